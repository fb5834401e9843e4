"""Load loops shared by every target: sequential latency and closed-loop throughput.

An operation is an async callable returning True on success. The same two
loops drive the baseline (spawning ``bash -c true``) and the HTTP calls to
runyard, so the ratios in the results table compare like with like.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from cpu import CpuWatch
from stats import Latency, Throughput, per_op

Op = Callable[[], Awaitable[bool]]


async def spawn_true() -> bool:
    """The baseline operation: fork/exec ``bash -c true`` and reap it."""
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "true",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await proc.wait() == 0


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
