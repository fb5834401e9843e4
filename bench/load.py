"""Load loops shared by every target: sequential latency and closed-loop throughput.

An operation is an async callable returning True on success. The same two
loops drive the baseline (spawning ``bash -c true``) and the HTTP calls to
runyard, so the ratios in the results table compare like with like.
:func:`phase` runs one such measurement in a fresh event loop with progress
output; every benchmark script uses it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cpu import CpuWatch
from stats import Latency, Throughput, per_op

Op = Callable[[], Awaitable[bool]]
T = TypeVar("T")


def phase(title: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one measurement in a fresh event loop, reporting progress."""
    print(f"• {title}", flush=True)
    started = time.perf_counter()
    result = asyncio.run(work())
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    return result


def spawner(*argv: str) -> Op:
    """An operation: fork/exec ``argv`` with ``asyncio.create_subprocess_exec``, then reap it."""

    async def spawn() -> bool:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await proc.wait() == 0

    return spawn


# The baseline operation of bench_exec.py.
spawn_true = spawner("bash", "-c", "true")


async def measure_latency(op: Op, runs: int, warmup: int, cpu: CpuWatch) -> Latency:
    """``warmup`` unmeasured calls, then ``runs`` timed calls one after another."""
    for _ in range(warmup):
        await op()
    samples: list[float] = []
    errors = 0
    cpu_start = cpu.snapshot()
    for _ in range(runs):
        start = time.perf_counter()
        ok = await op()
        elapsed = time.perf_counter() - start
        if ok:
            samples.append(elapsed)
        else:
            errors += 1
    return Latency.of(samples, errors, cpu.since(cpu_start))


async def measure_throughput(ops: list[Op], seconds: float, cpu: CpuWatch) -> Throughput:
    """Each op in ``ops`` is one client calling in a loop until ``seconds`` have passed.

    Calls in flight at the deadline are allowed to finish and are counted;
    the rate is completions over the time from the start to the last one.
    """
    cpu_start = cpu.snapshot()
    completed = 0
    errors = 0
    start = time.perf_counter()
    deadline = start + seconds
    last_done = start

    async def client(op: Op) -> None:
        nonlocal completed, errors, last_done
        while time.perf_counter() < deadline:
            ok = await op()
            last_done = max(last_done, time.perf_counter())
            if ok:
                completed += 1
            else:
                errors += 1

    await asyncio.gather(*(client(op) for op in ops))
    cpu_used = cpu.since(cpu_start)
    return Throughput(
        concurrency=len(ops),
        completed=completed,
        errors=errors,
        seconds=last_done - start,
        cpu_ms_per_op=per_op(cpu_used, completed),
    )


@dataclass
class Samples:
    """What :func:`measure_interleaved` collected for one operation."""

    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_seconds: float = 0.0  # what ``window_cpu`` counted inside this operation's calls


async def measure_interleaved(
    ops: dict[str, Op], runs: int, warmup: int, window_cpu: Callable[[], float]
) -> dict[str, Samples]:
    """``warmup`` unmeasured rounds, then ``runs`` rounds calling every op once, one at a time.

    The order rotates by one each round, so drift on a noisy machine (a
    neighbour's burst, a frequency change) spreads over every op instead of
    landing on whichever was measured last; the ratios between ops are what
    this is for. ``window_cpu()`` (CPU seconds so far, e.g. this process and
    its reaped children) is read around each call and charged to its op.
    """
    names = list(ops)
    for _ in range(warmup):
        for name in names:
            await ops[name]()
    found = {name: Samples() for name in names}
    for i in range(runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            cpu_start = window_cpu()
            start = time.perf_counter()
            ok = await ops[name]()
            elapsed = time.perf_counter() - start
            got = found[name]
            got.cpu_seconds += window_cpu() - cpu_start
            if ok:
                got.seconds.append(elapsed)
            else:
                got.errors += 1
    return found
