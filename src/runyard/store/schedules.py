"""Schedule storage, mixed into :class:`~runyard.store.sql.SqlStore`.

Client reads and writes are scoped by workspace and agent inside the query.
The scheduler side fires a tick with one conditional update
(:meth:`ScheduleSql.claim_schedule`): it moves ``next_run_at`` from the value
it read to the next tick, so of any number of workers that read the same due
row, exactly one wins the tick. A paused or disabled schedule has no
``next_run_at`` and is never due.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from runyard.domain.schedules import Schedule

if TYPE_CHECKING:
    from runyard.store.sql import Tx

_SCOPE = "workspace_id = ? AND agent_id = ?"
_FIELDS = (
    "name",
    "cron",
    "timezone",
    "prompt",
    "enabled",
    "paused",
    "harness",
    "timeout_seconds",
    "next_run_at",
)


def schedule(row: dict[str, Any]) -> Schedule:
    return Schedule(
        id=row["id"],
        workspace_id=row["workspace_id"],
        agent_id=row["agent_id"],
        name=row["name"],
        cron=row["cron"],
        timezone=row["timezone"],
        prompt=row["prompt"],
        enabled=bool(row["enabled"]),
        paused=bool(row["paused"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        next_run_at=row["next_run_at"],
        harness=row["harness"],
        timeout_seconds=row["timeout_seconds"],
        last_ran_at=row["last_ran_at"],
        last_run_id=row["last_run_id"],
        last_spawn_error=row["last_spawn_error"],
    )


class ScheduleSql:
    """The schedule half of the store protocol (see :mod:`runyard.store.base`)."""

    @abstractmethod
    def _tx(self, write: bool = False) -> AbstractContextManager[Tx]: ...

    def insert_schedule(self, s: Schedule) -> bool:
        """Insert ``s``; False if its agent does not exist in its workspace."""
        with self._tx(write=True) as tx:
            agent = tx.q(
                "SELECT id FROM agents WHERE workspace_id = ? AND id = ?",
                [s.workspace_id, s.agent_id],
            )
            if not agent:
                return False
            tx.x(
                "INSERT INTO schedules (id, workspace_id, agent_id, name, cron, timezone,"
                " prompt, enabled, paused, harness, timeout_seconds, next_run_at,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    s.id,
                    s.workspace_id,
                    s.agent_id,
                    s.name,
                    s.cron,
                    s.timezone,
                    s.prompt,
                    s.enabled,
                    s.paused,
                    s.harness,
                    s.timeout_seconds,
                    s.next_run_at,
                    s.created_at,
                    s.updated_at,
                ],
            )
        return True

    def count_schedules(self, workspace_id: str, agent_id: str) -> int:
        with self._tx() as tx:
            found = tx.q(
                f"SELECT COUNT(*) AS n FROM schedules WHERE {_SCOPE}", [workspace_id, agent_id]
            )
        return int(found[0]["n"])

    def list_schedules(self, workspace_id: str, agent_id: str) -> list[Schedule]:
        with self._tx() as tx:
            found = tx.q(
                f"SELECT * FROM schedules WHERE {_SCOPE} ORDER BY id", [workspace_id, agent_id]
            )
        return [schedule(r) for r in found]

    def get_schedule(self, workspace_id: str, agent_id: str, schedule_id: str) -> Schedule | None:
        with self._tx() as tx:
            found = tx.q(
                f"SELECT * FROM schedules WHERE {_SCOPE} AND id = ?",
                [workspace_id, agent_id, schedule_id],
            )
        return schedule(found[0]) if found else None

    def update_schedule(
        self,
        workspace_id: str,
        agent_id: str,
        schedule_id: str,
        changes: dict[str, Any],
        now: int,
    ) -> Schedule | None:
        """Set the given columns (see ``_FIELDS``); the updated schedule, or None."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValueError(f"not schedule columns: {sorted(unknown)}")
        values = {**changes, "updated_at": now}
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._tx(write=True) as tx:
            tx.x(
                f"UPDATE schedules SET {sets} WHERE {_SCOPE} AND id = ?",
                [*values.values(), workspace_id, agent_id, schedule_id],
            )
            found = tx.q(
                f"SELECT * FROM schedules WHERE {_SCOPE} AND id = ?",
                [workspace_id, agent_id, schedule_id],
            )
        return schedule(found[0]) if found else None

    def delete_schedule(self, workspace_id: str, agent_id: str, schedule_id: str) -> bool:
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    f"DELETE FROM schedules WHERE {_SCOPE} AND id = ?",
                    [workspace_id, agent_id, schedule_id],
                )
                == 1
            )

    # ---- scheduler side ----------------------------------------------------------

    def due_schedules(self, now: int, limit: int) -> list[Schedule]:
        """Active schedules whose next run is at or before ``now``, oldest tick first."""
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM schedules WHERE next_run_at IS NOT NULL AND next_run_at <= ?"
                " AND enabled = ? AND paused = ? ORDER BY next_run_at LIMIT ?",
                [now, True, False, limit],
            )
        return [schedule(r) for r in found]

    def claim_schedule(self, schedule_id: str, expected_next: int, new_next: int) -> bool:
        """Take the tick ``expected_next`` by moving ``next_run_at`` to ``new_next``.

        True for exactly one caller per tick: the update is conditional on the
        value that caller read, and on the schedule still being active.
        """
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    "UPDATE schedules SET next_run_at = ? WHERE id = ? AND next_run_at = ?"
                    " AND enabled = ? AND paused = ?",
                    [new_next, schedule_id, expected_next, True, False],
                )
                == 1
            )

    def record_schedule_fire(
        self, schedule_id: str, run_id: str | None, error: str | None, now: int
    ) -> None:
        """Record a fired tick: a run (clears the error) or the spawn error."""
        with self._tx(write=True) as tx:
            if run_id is not None:
                tx.x(
                    "UPDATE schedules SET last_ran_at = ?, last_run_id = ?,"
                    " last_spawn_error = NULL WHERE id = ?",
                    [now, run_id, schedule_id],
                )
            else:
                tx.x(
                    "UPDATE schedules SET last_spawn_error = ? WHERE id = ?",
                    [error, schedule_id],
                )
