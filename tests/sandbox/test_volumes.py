"""Agent home volumes: mounted once, sized by diskGiB, released and removed cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.errors import SandboxUnavailable
from runyard.sandbox.volumes import HomeVolumes, _mounted

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="home volumes are mounted as root")


def mounts_at(path: Path) -> int:
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        return sum(1 for line in fh if line.split()[4] == str(path))


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    # The mount root must be reachable by sandbox uids; tmp_path's parents are 0700.
    top = Path("/run/runyard-test") / uuid.uuid4().hex[:8]
    data, mount_root = tmp_path / "data", top / "inst"
    yield data, mount_root
    subprocess.run(["umount", "-R", str(mount_root)], capture_output=True, check=False)
    shutil.rmtree(top, ignore_errors=True)


def test_an_unreachable_mount_root_fails_closed(tmp_path: Path) -> None:
    volumes = HomeVolumes(tmp_path / "data", tmp_path / "private" / "inst", quota=False)
    with pytest.raises(SandboxUnavailable, match="not traversable"):
        volumes.check()


@pytest.mark.parametrize("quota", [True, False])
def test_ensure_is_idempotent_and_remove_cleans_up(roots: tuple[Path, Path], quota: bool) -> None:
    data, mount_root = roots
    volumes = HomeVolumes(data, mount_root, quota=quota)
    volumes.check()
    home = volumes.ensure("agent_a", 1, owner=1_234_567)
    again = volumes.ensure("agent_a", 1, owner=1_234_567)
    assert home == again == mount_root / "homes" / "agent_a"
    assert _mounted(home) and mounts_at(home) == 1
    assert home.stat().st_uid == 1_234_567
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    if quota:
        total = os.statvfs(home).f_blocks * os.statvfs(home).f_frsize
        assert 0.9 * 1024**3 < total <= 1024**3
        assert not (home / "lost+found").exists()
    (home / "kept").write_text("x")
    volumes.release_all()
    assert not _mounted(home)
    assert volumes.ensure("agent_a", 1, owner=1_234_567) == home
    assert (home / "kept").read_text() == "x"
    volumes.remove("agent_a")
    assert not _mounted(home) and not home.exists()
    assert not (data / "agents" / "agent_a").exists()
