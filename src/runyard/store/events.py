"""The per-run event log, idempotent submits and cancels, mixed into ``SqlStore``.

Events are append-only and numbered 1, 2, … per run. Every event is written
in the same transaction as the status change it records, *after* that
change's conditional ``UPDATE`` of the run row: the row lock it takes
serializes appenders, so ``MAX(seq) + 1`` never hands out one number twice.
Events never carry the prompt; the ``output`` event carries the final
(already redacted) output text.

An idempotent submit inserts its ``idempotency_keys`` row first with ``ON
CONFLICT DO NOTHING``: of concurrent duplicates exactly one inserts (the
unique constraint decides, never a read-then-write), and the others read the
winner's committed row.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runyard.domain.entities import Run, RunEvent
from runyard.store import rows
from runyard.store.fragments import ACTIVE_SQL, insert_sql

if TYPE_CHECKING:
    from runyard.store.sql import Tx


@dataclass(frozen=True)
class IdempotentSubmit:
    """What an idempotent insert found: the run, whether this call created it,
    and the request hash stored with the key (compare it with the caller's)."""

    run: Run
    created: bool
    request_hash: str


@dataclass(frozen=True)
class CancelResult:
    """``cancelled`` (was queued), ``requested`` (claimed or running) or ``unchanged``."""

    run: Run
    action: str


def event(row: dict[str, Any]) -> RunEvent:
    return RunEvent(
        run_id=row["run_id"],
        seq=row["seq"],
        type=row["type"],
        data=rows.loads(row["data"]) or {},
        created_at=row["created_at"],
    )


class RunEventSql:
    """Event log, idempotency keys and cancellation (see :mod:`runyard.store.base`)."""

    @abstractmethod
    def _tx(self, write: bool = False) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _notify(self, tx: Tx, event: str, run_id: str) -> None: ...

    @abstractmethod
    def _enqueue_webhooks(self, tx: Tx, run_id: str, status: str, now: int) -> None:
        """Webhook outbox, in the status change's transaction (see ``store.webhooks``)."""

    def _append_event(self, tx: Tx, run_id: str, type: str, data: dict[str, Any], now: int) -> None:
        """Append one event; call only after this transaction updated the run's row."""
        tx.x(
            "INSERT INTO run_events (run_id, seq, type, data, created_at)"
            " SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM run_events WHERE run_id = ?",
            [run_id, type, rows.dumps(data), now, run_id],
        )
        self._notify(tx, "event", run_id)

    def _status_event(self, tx: Tx, run_id: str, status: str, now: int, **extra: Any) -> None:
        self._append_event(tx, run_id, "status", {"status": status, **extra}, now)
        self._enqueue_webhooks(tx, run_id, status, now)

    def _insert_run_tx(self, tx: Tx, run: Run, concurrency_limit: int) -> None:
        tx.x(*insert_sql("runs", rows.run_params(run, concurrency_limit)))
        self._status_event(tx, run.id, run.status, run.created_at)
        self._notify(tx, "queued", run.id)

    def list_events(
        self, workspace_id: str, run_id: str, after_seq: int, limit: int
    ) -> list[RunEvent]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT e.* FROM run_events e JOIN runs r ON r.id = e.run_id"
                " WHERE r.workspace_id = ? AND e.run_id = ? AND e.seq > ?"
                " ORDER BY e.seq LIMIT ?",
                [workspace_id, run_id, after_seq, limit],
            )
        return [event(r) for r in found]

    def insert_run_idempotent(
        self, run: Run, concurrency_limit: int, key: str, request_hash: str
    ) -> IdempotentSubmit:
        """Insert ``run`` unless ``key`` was used in its workspace; then return that run."""
        with self._tx(write=True) as tx:
            won = tx.x(
                "INSERT INTO idempotency_keys (workspace_id, key, run_id, request_hash,"
                " created_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (workspace_id, key) DO NOTHING",
                [run.workspace_id, key, run.id, request_hash, run.created_at],
            )
            if won:
                self._insert_run_tx(tx, run, concurrency_limit)
                return IdempotentSubmit(run=run, created=True, request_hash=request_hash)
            held = tx.q(
                "SELECT k.request_hash, r.* FROM idempotency_keys k JOIN runs r ON r.id = k.run_id"
                " WHERE k.workspace_id = ? AND k.key = ?",
                [run.workspace_id, key],
            )[0]
        return IdempotentSubmit(
            run=rows.run(held), created=False, request_hash=str(held["request_hash"])
        )

    def cancel_run(
        self, workspace_id: str, agent_id: str, run_id: str, now: int
    ) -> CancelResult | None:
        """Cancel a queued run at once, or ask the worker of an active one to stop it."""
        scope = "workspace_id = ? AND agent_id = ? AND id = ?"
        where = [workspace_id, agent_id, run_id]
        with self._tx(write=True) as tx:
            action = "unchanged"
            if tx.q(
                "UPDATE runs SET status = 'cancelled', updated_at = ?, completed_at = ?,"
                " error_code = 'cancelled', error_message = 'the run was cancelled before it"
                f" started', error_retryable = ? WHERE {scope} AND status = 'queued'"
                " RETURNING id",
                [now, now, False, *where],
            ):
                action = "cancelled"
                self._status_event(tx, run_id, "cancelled", now, errorCode="cancelled")
                self._notify(tx, "finished", run_id)
            elif tx.q(
                "UPDATE runs SET cancel_requested = ?, updated_at = ?"
                f" WHERE {scope} AND status IN ({ACTIVE_SQL}) AND cancel_requested = ?"
                " RETURNING id",
                [True, now, *where, False],
            ):
                action = "requested"
                self._append_event(tx, run_id, "cancel_requested", {}, now)
            found = tx.q(f"SELECT * FROM runs WHERE {scope}", where)
        return CancelResult(run=rows.run(found[0]), action=action) if found else None
