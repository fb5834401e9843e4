"""The process supervisor every substrate shares: caps, timeouts, whole-tree kills."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

from runyard.sandbox.base import ProcessResult, supervise

ENV = {"PATH": "/usr/bin:/bin"}


def run(script: str, tmp_path: Path, timeout: float = 10, cap: int = 1 << 20) -> ProcessResult:
    async def go() -> ProcessResult:
        return await supervise(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=ENV,
            stdin=None,
            timeout_seconds=timeout,
            max_output_bytes=cap,
            cancel=asyncio.Event(),
        )

    return asyncio.run(go())


def alive(marker: str) -> bool:
    done = subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False)
    return done.returncode == 0


def test_exit_code_and_output(tmp_path: Path) -> None:
    result = run("echo out; echo err >&2; exit 7", tmp_path)
    assert (result.exit_code, result.stdout, result.stderr_tail) == (7, b"out\n", b"err\n")
    assert not result.timed_out and not result.cancelled


def test_output_is_capped_and_drained(tmp_path: Path) -> None:
    result = run("head -c 300000 /dev/zero", tmp_path, cap=1000)
    assert result.exit_code == 0
    assert len(result.stdout) == 1000 and result.stdout_truncated


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    marker = f"sleep-{uuid.uuid4().hex}"
    result = run(f"bash -c 'exec -a {marker} sleep 1000' & wait", tmp_path, timeout=0.5)
    assert result.timed_out and result.exit_code is None
    assert not alive(marker)


def test_background_child_holding_stdout_does_not_hang_the_run(tmp_path: Path) -> None:
    marker = f"bg-{uuid.uuid4().hex}"
    result = run(f"(exec -a {marker} sleep 1000) & echo done", tmp_path, timeout=30)
    assert result.exit_code == 0 and result.stdout == b"done\n"
    assert not result.timed_out
    assert not alive(marker)


def test_cancel_stops_the_run(tmp_path: Path) -> None:
    async def go() -> ProcessResult:
        cancel = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, cancel.set)
        return await supervise(
            ["bash", "-c", "sleep 1000"],
            cwd=tmp_path,
            env=ENV,
            stdin=None,
            timeout_seconds=60,
            max_output_bytes=100,
            cancel=cancel,
        )

    result = asyncio.run(go())
    assert result.cancelled and not result.timed_out and result.exit_code is None
