"""Agent home volumes: where each agent's persistent home lives on the host.

With disk quotas (the default when runyard runs as root) a home is an ext4
filesystem in a sparse image file, ``<data>/agents/<id>/home.img``, sized by
``resourceLimits.diskGiB`` and loop-mounted (``nosuid,nodev``) at
``<mount root>/homes/<id>``: the kernel enforces the size, and the mount
point is reachable by the agent's unprivileged uid while the data directory
stays private to runyard. Mount points live under ``/run`` and are mounted
again on demand after a reboot; the image is the durable part.

Without quotas but as root, the home is a plain directory in the data
directory bind-mounted at the same mount point. Not root, a home is a plain
directory in the data directory, used in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from runyard.errors import SandboxUnavailable

DEFAULT_MOUNT_ROOT = Path("/run/runyard")


def instance_root(mount_root: Path, data_dir: Path) -> Path:
    """One subtree per data directory, so several runyards on a host never collide."""
    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return mount_root / tag


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"{argv[0]} failed: {done.stderr.strip() or done.returncode}")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 …).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point, bind mounts on the same filesystem included.

    ``os.path.ismount`` compares device numbers and misses those, which would
    stack a new bind mount on every start.
    """
    target = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return any(_unescape(line.split()[4]) == target for line in fh)


class HomeVolumes:
    def __init__(
        self, data_dir: Path, root: Path, quota: bool, mounted: bool | None = None
    ) -> None:
        self._agents = data_dir / "agents"
        self.root = root
        self.quota = quota
        # As root, homes are mounted where the unprivileged sandbox uid can reach them.
        self.mounted = os.geteuid() == 0 if mounted is None else mounted

    def check(self) -> None:
        if not self.quota and not self.mounted:
            return
        if self.quota and os.geteuid() != 0:
            raise SandboxUnavailable(
                "disk quotas for agent homes need root (loop-mounted images);"
                " run as root or set RUNYARD_DISK_QUOTA=off to run without a disk limit"
            )
        missing = [t for t in ("mkfs.ext4", "mount", "umount") if shutil.which(t) is None]
        if missing:
            raise SandboxUnavailable(f"missing tools for home volumes: {', '.join(missing)}")
        for d in (self.root.parent, self.root, self.root / "homes", self.root / "runs"):
            d.mkdir(mode=0o711, parents=True, exist_ok=True)
            os.chmod(d, 0o711)
        for ancestor in self.root.parent.parents:
            if not os.stat(ancestor).st_mode & 0o001:
                raise SandboxUnavailable(
                    f"{ancestor} is not traversable by other users, so sandboxes cannot reach"
                    f" the agent homes under {self.root}; choose another RUNYARD_MOUNT_ROOT"
                )

    def home(self, agent_id: str) -> Path:
        if self.mounted:
            return self.root / "homes" / agent_id
        return self._agents / agent_id / "home"

    def runs_dir(self) -> Path | None:
        """Where run directories go when homes are mounted outside the data dir."""
        return self.root / "runs" if self.mounted else None

    def ensure(self, agent_id: str, size_gib: int, owner: int | None) -> Path:
        """Create and mount (or just create) the agent's home; idempotent."""
        home = self.home(agent_id)
        if not self.quota:
            source = self._agents / agent_id / "home"
            source.mkdir(parents=True, exist_ok=True, mode=0o700)
            if owner is not None and source.stat().st_uid != owner:
                os.chown(source, owner, owner)
            if self.mounted and not _mounted(home):
                home.mkdir(mode=0o700, exist_ok=True)
                _run(["mount", "--bind", str(source), str(home)])
            return home
        if _mounted(home):
            return home
        image = self._agents / agent_id / "home.img"
        if not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            partial = image.with_suffix(".partial")
            with partial.open("wb") as fh:
                fh.truncate(size_gib * 1024**3)
            uid = owner if owner is not None else os.geteuid()
            _run(
                ["mkfs.ext4", "-q", "-F", "-m", "0", "-E", f"root_owner={uid}:{uid}", str(partial)]
            )
            partial.rename(image)
        home.mkdir(mode=0o700, exist_ok=True)
        _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(home)])
        lost = home / "lost+found"
        if lost.is_dir() and not any(lost.iterdir()):
            lost.rmdir()
        os.chmod(home, 0o700)
        if owner is not None:
            os.chown(home, owner, owner)
        return home

    def release(self, agent_id: str) -> None:
        home = self.home(agent_id)
        if self.mounted and _mounted(home):
            _run(["umount", str(home)])
        if self.mounted and home.exists():
            home.rmdir()

    def remove(self, agent_id: str) -> None:
        """Tear the home down for good (agent deleted)."""
        self.release(agent_id)
        shutil.rmtree(self._agents / agent_id, ignore_errors=True)

    def release_all(self) -> None:
        """Unmount every home of this instance (worker shutdown); images stay."""
        homes = self.root / "homes"
        if not self.mounted or not homes.is_dir():
            return
        for entry in homes.iterdir():
            if _mounted(entry):
                subprocess.run(["umount", "-l", str(entry)], capture_output=True, check=False)
            try:
                entry.rmdir()
            except OSError:
                continue
