"""runyard's sandbox substrates built for a benchmark, confined to one temporary tree.

Why: measuring what a sandbox costs to start means calling
``runyard.sandbox`` directly, with no HTTP and no store in the way, on the
same substrates ``build_substrate`` builds for a worker. A bench must not
collide with a runyard (or a test) running on the same host, and must leave
nothing behind: so every rig here gets its own data dir under one temporary
root, that root doubles as the mount root (agent homes are loop-mounted or
bind-mounted below it), its runs carry a run-id prefix unique to the bench
run, and :func:`cleanup` unmounts whatever is still mounted below the root
and removes any per-run cgroup with that prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from load import Op

from runyard.domain.policies import RuntimePolicy
from runyard.sandbox import build_substrate
from runyard.sandbox.base import ProcessResult, ProcessSpec, Substrate
from runyard.sandbox.cgroups import ROOT as CGROUP_ROOT
from runyard.settings import Settings
from runyard.worker.outcomes import BASE_ENV

ALLOWLIST = {"networkPolicy": {"mode": "allowlist", "allowList": ["example.com"]}}
RUN_TIMEOUT_S = 60.0


def private_root(path: Path) -> Path:
    """Make ``path`` traversable (0711) so the agents' uids can reach their homes below it."""
    os.chmod(path, 0o711)
    return path


@dataclass
class Rig:
    """One substrate with one agent whose home is ready; :meth:`op` runs ``argv`` in it."""

    label: str
    substrate: Substrate
    policy: RuntimePolicy
    agent_id: str
    home: Path
    run_dir: Path
    run_prefix: str
    argv: list[str] = field(default_factory=lambda: ["true"])
    failures: list[str] = field(default_factory=list)
    _count: int = 0

    def spec(self, argv: list[str] | None = None) -> ProcessSpec:
        """A spec like the executor's: its base environment, the run's ids, the agent's policy."""
        self._count += 1
        run_id = f"{self.run_prefix}-{self._count}"
        return ProcessSpec(
            argv=list(argv or self.argv),
            home=self.home,
            run_dir=self.run_dir,
            cwd=".",
            env={**BASE_ENV, "RUNYARD_RUN_ID": run_id, "RUNYARD_AGENT_ID": self.agent_id},
            timeout_seconds=RUN_TIMEOUT_S,
            max_output_bytes=Settings().max_output_bytes,
            policy=self.policy,
            agent_id=self.agent_id,
            run_id=run_id,
        )

    async def run(self, argv: list[str] | None = None) -> ProcessResult:
        return await self.substrate.run(self.spec(argv), asyncio.Event())

    def op(self) -> Op:
        async def op() -> bool:
            result = await self.run()
            if result.exit_code == 0:
                return True
            if len(self.failures) < 3:
                detail = result.stderr_tail.decode(errors="replace")[-300:]
                self.failures.append(f"{self.label}: exit {result.exit_code} {detail}")
            return False

        return op


def make_rig(
    root: Path,
    key: str,
    label: str,
    *,
    substrate: str,
    cgroups: bool = True,
    runtime_policy: dict[str, object] | None = None,
    run_prefix: str,
) -> Rig:
    """Build a substrate as ``build_substrate`` does, with its data dir under ``root``.

    ``root`` is also the mount root (an instance subtree per data dir, as in
    production). The agent's home is prepared the way the provisioner does it;
    the run directory is made once, owned by the agent's uid like the
    executor's, and reused by every run (runs differ by run id, so each gets
    its own cgroup).
    """
    data = root / f"data-{key}"
    data.mkdir()
    settings = Settings(
        data_dir=data,
        mount_root=root / "mnt",
        substrate=substrate,
        sandbox_cgroups=cgroups,
    )
    built = build_substrate(settings)
    built.check()
    policy = RuntimePolicy.model_validate(runtime_policy or {})
    agent_id = f"agent_bench{secrets.token_hex(4)}"
    home = built.prepare_home(agent_id, policy)
    owner = built.owner_of(agent_id)
    run_dir = built.run_dir(f"{run_prefix}-dir")
    run_dir.mkdir(parents=True, mode=0o700)
    if owner is not None:
        os.chown(run_dir, owner, owner)
    return Rig(
        label=label,
        substrate=built,
        policy=policy,
        agent_id=agent_id,
        home=home,
        run_dir=run_dir,
        run_prefix=run_prefix,
    )


def run_prefix() -> str:
    """A run-id prefix no other runyard uses, so leftovers can be found and removed."""
    return f"bench-{secrets.token_hex(4)}"


def mounts_under(root: Path) -> list[Path]:
    """Mount points strictly below ``root``, deepest first."""
    prefix = str(root.resolve()) + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 etc.
        if point.startswith(prefix):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def cleanup(root: Path, prefixes: list[str]) -> list[str]:
    """Unmount everything below ``root``; remove cgroups named ``<prefix>-*``. Returns notes."""
    notes = []
    points = mounts_under(root)
    for point in points:
        done = subprocess.run(["umount", str(point)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
            notes.append(f"lazily unmounted {point}: {done.stderr.strip()}")
    if points:
        names = ", ".join(p.name for p in points)
        notes.append(f"unmounted {len(points)} home(s) still mounted below the bench root: {names}")
    parents = [CGROUP_ROOT / "runyard", *CGROUP_ROOT.glob("*/runyard")]
    for parent in parents:
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.is_dir() and any(child.name.startswith(f"{p}-") for p in prefixes):
                with contextlib.suppress(OSError):
                    child.rmdir()
                    notes.append(f"removed leftover cgroup {child}")
    return notes
