"""Per-run cgroups on cgroup v1 (per-controller hierarchies) or v2 (unified).

A run's processes join the cgroup before any of its code runs (the launcher
writes its own pid, then execs the sandbox), so every descendant, including
double-forked ones, is inside. Limits: memory (no swap), pids, CPU quota.
Killing a run freezes the cgroup (v1 freezer) or uses ``cgroup.kill`` (v2),
then kills every member until it is empty: nothing survives a timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from runyard.errors import SandboxUnavailable

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu", "freezer")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpus: float


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _members(procs_files: list[Path]) -> set[int]:
    pids: set[int] = set()
    for procs in procs_files:
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in procs.read_text().split())
    return pids


class RunCgroup:
    """The cgroup(s) of one run; ``procs_files`` are what the launcher writes its pid to."""

    def __init__(self, dirs: list[Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def kill(self, deadline_s: float = 5.0) -> bool:
        """Kill every process in the cgroup; True when it is empty."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
        freezer = next((d for d in self.dirs if d.parent.parent.name == "freezer"), None)
        if freezer is not None:
            with contextlib.suppress(OSError):
                _write(freezer / "freezer.state", "FROZEN")
        end = time.monotonic() + deadline_s
        pause = 0.0002
        while True:
            members = _members(self.procs_files)
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if freezer is not None:
                with contextlib.suppress(OSError):
                    _write(freezer / "freezer.state", "THAWED")
            if not members:
                return True
            if time.monotonic() > end:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def memory_events(self) -> dict[str, int]:
        """OOM evidence: how often the memory limit was hit (best effort)."""
        for d in self.dirs:
            if self.version == 2:
                path = d / "memory.events"
                with contextlib.suppress(OSError):
                    pairs = (line.split() for line in path.read_text().splitlines())
                    return {k: int(v) for k, v in pairs}
            elif d.parent.parent.name == "memory":
                # v1: failcnt counts charges refused at the limit, but the kernel
                # may reclaim or OOM-kill without counting one; oom_control's
                # oom_kill (kernel 4.13+) is the kill count.
                events: dict[str, int] = {}
                with contextlib.suppress(OSError, ValueError):
                    events["max"] = int((d / "memory.failcnt").read_text())
                with contextlib.suppress(OSError, ValueError):
                    for line in (d / "memory.oom_control").read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            events["oom_kill"] = int(value)
                return events
        return {}

    def remove(self) -> None:
        self.kill()
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


class CgroupManager:
    """Creates per-run cgroups under ``runyard/`` in whichever hierarchy this host has."""

    def __init__(self, root: Path = ROOT, parent: str = "runyard") -> None:
        self._root = root
        self._parent = parent
        self.version = 2 if (root / "cgroup.controllers").exists() else 1

    def check(self) -> None:
        """Create the parent cgroups and verify they are writable; else SandboxUnavailable."""
        try:
            if self.version == 2:
                base = self._root / self._parent
                base.mkdir(exist_ok=True)
                wanted = {"memory", "pids", "cpu"}
                available = set((self._root / "cgroup.controllers").read_text().split())
                missing = wanted - available
                if missing:
                    raise SandboxUnavailable(
                        f"cgroup v2 controllers missing: {', '.join(sorted(missing))}"
                    )
                _write(self._root / "cgroup.subtree_control", "+memory +pids +cpu")
                _write(base / "cgroup.subtree_control", "+memory +pids +cpu")
            else:
                for ctrl in V1_CONTROLLERS:
                    if not (self._root / ctrl).is_dir():
                        raise SandboxUnavailable(f"cgroup v1 controller {ctrl!r} is not mounted")
                    (self._root / ctrl / self._parent).mkdir(exist_ok=True)
        except PermissionError as exc:
            raise SandboxUnavailable(
                f"cannot create cgroups under {self._root} ({exc.strerror}); run runyard as root"
                " or set RUNYARD_SANDBOX_CGROUPS=off to run without resource limits"
            ) from exc
        except OSError as exc:
            raise SandboxUnavailable(f"cannot set up cgroups: {exc}") from exc

    def create(self, name: str, limits: Limits) -> RunCgroup:
        quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
        if self.version == 2:
            d = self._root / self._parent / name
            d.mkdir()
            _write(d / "memory.max", str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.pids))
            _write(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            return RunCgroup([d], 2)
        dirs = []
        for ctrl in V1_CONTROLLERS:
            d = self._root / ctrl / self._parent / name
            d.mkdir()
            dirs.append(d)
        mem, pids, cpu = dirs[0], dirs[1], dirs[2]
        _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
        with contextlib.suppress(OSError):
            _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        _write(pids / "pids.max", str(limits.pids))
        _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(cpu / "cpu.cfs_quota_us", str(quota))
        return RunCgroup(dirs, 1)
