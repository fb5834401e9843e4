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
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from runyard.domain.policies import RuntimePolicy
from runyard.sandbox.volumes import HomeVolumes

STDERR_TAIL = 16_384
DRAIN_AFTER_EXIT_S = 0.5
KILL_WAIT_S = 10.0


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
    agent_id: str = ""
    run_id: str = ""
    ephemeral_home: bool = False
    # The run's model-gateway socket on the host; the substrate exposes it as HTTP.
    gateway_socket: Path | None = None
    # Called on the event loop with each piece of stdout kept (for live output).
    on_output: Callable[[bytes], None] | None = None


MAX_UNIX_PATH = 100  # sun_path is 108 bytes with the NUL; keep a margin


class ShortUnixPath:
    """A path to a Unix socket in ``directory`` that fits ``sun_path``.

    A deep data directory makes socket paths too long for ``bind`` and
    ``connect``; this holds the directory open and names the socket through
    ``/proc/self/fd/N/<name>`` instead. Use it as a context manager.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self._directory = directory
        self._name = name
        self._fd: int | None = None

    def __enter__(self) -> Path:
        full = self._directory / self._name
        if len(str(full).encode()) <= MAX_UNIX_PATH:
            return full
        self._fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return Path(f"/proc/self/fd/{self._fd}/{self._name}")

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


MODEL_PORT = 4000
GATEWAY_PLACEHOLDER_KEY = "runyard-gateway"


def model_env(base_url: str, env: dict[str, str]) -> dict[str, str]:
    """What harnesses read to find a model: runyard's gateway, never a real key.

    The placeholder keys satisfy CLIs that insist on one; the gateway replaces
    whatever key a client sends with the agent's real credential.
    """
    out = {
        "RUNYARD_MODEL_BASE_URL": f"{base_url}/v1",
        "OPENAI_BASE_URL": f"{base_url}/v1",
        "ANTHROPIC_BASE_URL": base_url,
    }
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        if name not in env:
            out[name] = GATEWAY_PLACEHOLDER_KEY
    return out


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None
    stdout: bytes
    stdout_truncated: bool
    stderr_tail: bytes
    timed_out: bool
    cancelled: bool
    duration_ms: int
    evidence: dict[str, object] = field(default_factory=dict)

    def with_evidence(self, evidence: dict[str, object]) -> ProcessResult:
        return replace(self, evidence={**self.evidence, **evidence})


class Substrate(ABC):
    """One way of isolating a run. ``name`` is recorded as ``evidence.substrateProvider``.

    A substrate also owns where agents' homes and runs' private directories
    live on the host, because that depends on how it isolates them.
    """

    name: str

    def __init__(self, volumes: HomeVolumes, scratch: Path) -> None:
        self.volumes = volumes
        self.scratch = scratch

    def prepare_home(self, agent_id: str, policy: RuntimePolicy) -> Path:
        """Create (and mount) the agent's persistent home; idempotent."""
        limits = policy.resource_limits
        return self.volumes.ensure(agent_id, limits.disk_gib, self.owner_of(agent_id))

    def remove_home(self, agent_id: str) -> None:
        self.volumes.remove(agent_id)

    def run_dir(self, run_id: str) -> Path:
        return (self.volumes.runs_dir() or self.scratch) / run_id

    def shutdown(self) -> None:
        """Release host resources (mounted homes) when the worker stops."""
        self.volumes.release_all()

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`~runyard.errors.SandboxUnavailable` if this host cannot run it."""

    @abstractmethod
    def paths(self, spec_home: Path, run_dir: Path) -> SandboxPaths:
        """The inside view of the home and run directory."""

    def owner_of(self, agent_id: str) -> int | None:
        """The host uid that must own the agent's home and run files (None: ours)."""
        return None

    @abstractmethod
    async def run(self, spec: ProcessSpec, cancel: asyncio.Event) -> ProcessResult:
        """Run ``spec`` to completion, timeout or cancellation."""


class _Collector:
    """Reads one non-blocking pipe from the event loop: keep a head (stdout) or a tail (stderr)."""

    def __init__(
        self,
        fd: int,
        limit: int,
        keep_tail: bool,
        on_chunk: Callable[[bytes], None] | None = None,
    ) -> None:
        self.fd = fd
        self.on_chunk = on_chunk
        self.limit = limit
        self.keep_tail = keep_tail
        self.buf = bytearray()
        self.truncated = False
        self.eof = asyncio.Event()
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self.fd, 65_536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        if self.keep_tail:
            self.buf += chunk
            if len(self.buf) > self.limit:
                del self.buf[: len(self.buf) - self.limit]
            return
        room = self.limit - len(self.buf)
        if room > 0:
            self.buf += chunk[:room]
            if self.on_chunk is not None:
                self.on_chunk(chunk[:room])
        if len(chunk) > room:
            self.truncated = True

    def close(self) -> None:
        if not self.eof.is_set():
            asyncio.get_running_loop().remove_reader(self.fd)
            self.eof.set()


def _feed_stdin(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


async def _wait_set(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


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
    pass_fds: tuple[int, ...] = (),
    on_output: Callable[[bytes], None] | None = None,
) -> ProcessResult:
    """Spawn ``argv`` in a new session and supervise it as described above.

    The main process's exit is observed through a pidfd, not through pipe
    closure, so a background child that keeps stdout open cannot stall the
    run: when the main process ends, the rest of its tree is killed and the
    pipes get a short grace to drain.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=pass_fds,
    )
    assert proc.stdout is not None and proc.stderr is not None
    pidfd = os.pidfd_open(proc.pid)
    exited = asyncio.Event()
    loop.add_reader(pidfd, exited.set)
    out = _Collector(proc.stdout.fileno(), max_output_bytes, keep_tail=False, on_chunk=on_output)
    err = _Collector(proc.stderr.fileno(), STDERR_TAIL, keep_tail=True)
    feeder = None
    if stdin is not None and proc.stdin is not None:
        feeder = asyncio.create_task(asyncio.to_thread(_feed_stdin, proc.stdin, stdin))
    timed_out = cancelled = False
    try:
        stopper = asyncio.create_task(cancel.wait())
        waiter = asyncio.create_task(exited.wait())
        done, _ = await asyncio.wait(
            {waiter, stopper}, timeout=timeout_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in (stopper, waiter):
            task.cancel()
        timed_out = not done
        cancelled = bool(done) and not exited.is_set()
    finally:
        # Whatever happened, nothing of the run survives it. (Off the event
        # loop: emptying a cgroup may have to wait for dying processes.)
        await asyncio.to_thread(kill_tree, proc.pid)
        await _wait_set(exited, KILL_WAIT_S)
        loop.remove_reader(pidfd)
        os.close(pidfd)
        exit_code = proc.wait()
        await _wait_set(out.eof, DRAIN_AFTER_EXIT_S)
        await _wait_set(err.eof, DRAIN_AFTER_EXIT_S)
        out.close()
        err.close()
        proc.stdout.close()
        proc.stderr.close()
        if feeder is not None:
            feeder.cancel()
    return ProcessResult(
        exit_code=None if (timed_out or cancelled) else exit_code,
        stdout=bytes(out.buf),
        stdout_truncated=out.truncated,
        stderr_tail=bytes(err.buf),
        timed_out=timed_out,
        cancelled=cancelled,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
