"""Summaries of benchmark samples: latency percentiles, throughput, CPU per operation.

Kept apart from the loops that collect the samples so that the numbers in
the results table have one definition (linear-interpolated percentiles,
throughput over the wall time from the first start to the last completion).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, interpolated between ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Latency:
    """Sequential round trips: one operation at a time, times in milliseconds."""

    n: int
    errors: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    cpu_ms_per_op: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, seconds: list[float], errors: int, cpu_seconds: dict[str, float]) -> Latency:
        if not seconds:
            raise ValueError(f"every call failed ({errors} errors)")
        ms = [s * 1000 for s in seconds]
        return cls(
            n=len(ms),
            errors=errors,
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            mean_ms=sum(ms) / len(ms),
            cpu_ms_per_op=per_op(cpu_seconds, len(ms)),
        )


@dataclass(frozen=True)
class Throughput:
    """Completed operations per second with ``concurrency`` closed-loop clients."""

    concurrency: int
    completed: int
    errors: int
    seconds: float
    cpu_ms_per_op: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0


def per_op(cpu_seconds: dict[str, float], ops: int) -> dict[str, float]:
    """CPU milliseconds per completed operation, per process group."""
    if ops <= 0:
        return {}
    return {group: used * 1000 / ops for group, used in cpu_seconds.items()}
