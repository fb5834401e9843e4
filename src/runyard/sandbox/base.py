"""The substrate interface and the process supervisor every substrate uses.

A substrate turns a :class:`ProcessSpec` (argv as seen inside the sandbox,
the agent's home, limits) into a supervised process. The supervisor reads
stdout up to a cap (draining the rest so the child never blocks), keeps only
a tail of stderr, enforces the timeout, honours cancellation and always
kills the run's whole process group (or cgroup) when the run ends, so no
process of a run outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runyard.domain.policies import RuntimePolicy

STDERR_TAIL = 16_384
DRAIN_AFTER_EXIT_S = 0.5


@dataclass(frozen=True)
class SandboxPaths:
    """Where the agent's home and the run's private files appear to the process."""

    home: str
    run_dir: str


@dataclass(frozen=True)
class ProcessSpec:
    argv: list[str]
    home: Path
    run_dir: Path
    cwd: str
    env: dict[str, str]
    timeout_seconds: float
    max_output_bytes: int
    policy: RuntimePolicy = field(default_factory=RuntimePolicy)
    stdin: bytes | None = None


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None
    stdout: bytes
    stdout_truncated: bool
    stderr_tail: bytes
    timed_out: bool
    cancelled: bool
    duration_ms: int


class Substrate(ABC):
    """One way of isolating a run. ``name`` is recorded as ``evidence.substrateProvider``."""

    name: str

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`~runyard.errors.SandboxUnavailable` if this host cannot run it."""

    @abstractmethod
    def paths(self, spec_home: Path, run_dir: Path) -> SandboxPaths:
        """The inside view of the home and run directory."""

    @abstractmethod
    async def run(self, spec: ProcessSpec, cancel: asyncio.Event) -> ProcessResult:
        """Run ``spec`` to completion, timeout or cancellation."""


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    buf = bytearray()
    truncated = False
    while chunk := await stream.read(65_536):
        room = cap - len(buf)
        if room > 0:
            buf += chunk[:room]
        if len(chunk) > room:
            truncated = True
    return bytes(buf), truncated


async def _read_tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    buf = bytearray()
    while chunk := await stream.read(65_536):
        buf += chunk
        if len(buf) > keep:
            del buf[: len(buf) - keep]
    return bytes(buf)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def supervise(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdin: bytes | None,
    timeout_seconds: float,
    max_output_bytes: int,
    cancel: asyncio.Event,
    kill_tree: Callable[[int], None] = kill_group,
) -> ProcessResult:
    """Spawn ``argv`` in a new session and supervise it as described above."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_task = asyncio.create_task(_read_capped(proc.stdout, max_output_bytes))
    err_task = asyncio.create_task(_read_tail(proc.stderr, STDERR_TAIL))
    if stdin is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin)
            await proc.stdin.drain()
        proc.stdin.close()
    wait_task = asyncio.create_task(proc.wait())
    cancel_task = asyncio.create_task(cancel.wait())
    try:
        done, _ = await asyncio.wait(
            {wait_task, cancel_task}, timeout=timeout_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        timed_out = not done
        cancelled = cancel_task in done and wait_task not in done
    finally:
        # Whatever happened, nothing of the run survives it.
        kill_tree(proc.pid)
        cancel_task.cancel()
    exit_code = await wait_task
    # Pipes may be held open by a grandchild that escaped the group; do not wait forever.
    done_io, pending_io = await asyncio.wait({out_task, err_task}, timeout=DRAIN_AFTER_EXIT_S)
    for task in pending_io:
        task.cancel()
    stdout, truncated = out_task.result() if out_task in done_io else (b"", False)
    stderr = err_task.result() if err_task in done_io else b""
    return ProcessResult(
        exit_code=None if (timed_out or cancelled) else exit_code,
        stdout=stdout,
        stdout_truncated=truncated,
        stderr_tail=stderr,
        timed_out=timed_out,
        cancelled=cancelled,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
