"""CPU accounting per process group, so a slow number can be told from a noisy one.

Wall-clock numbers on a shared 2-core machine move with the neighbours; CPU
seconds spent per operation by the processes under test move much less, and
they say where the time goes (the bench client, the runyard processes, the
PostgreSQL backends serving them). A meter returns a snapshot ``{pid: cpu
seconds}``; the CPU used over a phase is the sum of per-pid deltas, so a
process that starts during the phase counts in full and one that exits
during it counts as nothing after its last snapshot.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

import psycopg

Snapshot = dict[int, float]
Meter = Callable[[], Snapshot]

_TICKS = os.sysconf("SC_CLK_TCK")


def own() -> Snapshot:
    """This process plus its reaped children (the baseline's spawns)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {os.getpid(): me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}


def own_total() -> float:
    """CPU seconds of this process and its reaped children, as one number."""
    return sum(own().values())


def pid_cpu(pid: int) -> float | None:
    """utime + stime + reaped children's, from ``/proc/<pid>/stat``; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return sum(int(f) for f in fields[11:15]) / _TICKS  # utime stime cutime cstime


def pids(watched: Callable[[], list[int]]) -> Meter:
    """A meter over the processes ``watched()`` names at each snapshot."""

    def snapshot() -> Snapshot:
        found = {pid: pid_cpu(pid) for pid in watched()}
        return {pid: cpu for pid, cpu in found.items() if cpu is not None}

    return snapshot


def postgres_backends(admin_url: str, dbname: str) -> Meter:
    """A meter over the PostgreSQL backends connected to ``dbname``."""

    def backends() -> list[int]:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", [dbname]
            ).fetchall()
        return [int(r[0]) for r in rows]

    return pids(backends)


def used(before: Snapshot, after: Snapshot) -> float:
    """CPU seconds used between two snapshots of one meter."""
    total = 0.0
    for pid, end in after.items():
        total += end - before.get(pid, 0.0)  # a pid new in ``after`` counts in full
    return total  # a pid gone from ``after`` adds nothing: its last minutes are unknown


class CpuWatch:
    """Several named meters read together at the start and end of a phase."""

    def __init__(self, meters: dict[str, Meter]) -> None:
        self._meters = meters

    def snapshot(self) -> dict[str, Snapshot]:
        return {name: meter() for name, meter in self._meters.items()}

    def since(self, start: dict[str, Snapshot]) -> dict[str, float]:
        end = self.snapshot()
        return {name: used(start[name], end[name]) for name in self._meters}
