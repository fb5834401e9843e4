"""The run state machine, in one table.

Every status write in the store is a conditional update whose ``WHERE``
clause lists the states a transition may start from, taken from
:data:`TRANSITIONS`; nothing reads a status and then writes it back.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


TERMINAL: frozenset[RunStatus] = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.PARTIAL,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.TIMED_OUT,
    }
)

ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.CLAIMED, RunStatus.RUNNING})

# from-state -> the states it may move to.  Claimed -> queued is the reaper
# rescuing a run whose worker died before starting it.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.CLAIMED, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.CLAIMED: frozenset(
        {RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.RUNNING: frozenset(TERMINAL),
}


def sources_of(target: RunStatus) -> tuple[RunStatus, ...]:
    """The states from which ``target`` may be entered, in a stable order."""
    return tuple(s for s in RunStatus if target in TRANSITIONS.get(s, frozenset()))


def can_move(source: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS.get(source, frozenset())


def is_terminal(status: str) -> bool:
    return status in {s.value for s in TERMINAL}
