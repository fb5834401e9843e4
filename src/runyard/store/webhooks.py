"""Webhook storage and the delivery outbox, mixed into :class:`~runyard.store.sql.SqlStore`.

Client reads and writes are scoped by workspace inside the query. Deliveries
are enqueued by :meth:`WebhookSql._enqueue_webhooks`, which the run event log
calls in the very transaction that changes a run's status: one ``INSERT …
SELECT`` from the workspace's enabled, subscribed webhooks joined with the
run's row, copying a snapshot of the run's support-safe fields. A status
change and its deliveries therefore commit or vanish together, so a delivery
is never lost or enqueued twice, whatever crashes.

The dispatcher side claims due deliveries with one conditional update whose
candidates are selected ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite's
``BEGIN IMMEDIATE`` already serializes writers), under a lease: a dispatcher
that dies mid-send leaves a ``delivering`` row whose lease expires and which
is claimed again (delivery is at least once; receivers dedupe on the
delivery id). Results are recorded under the lease token, so a late writer
whose lease was taken over changes nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from runyard.domain.webhooks import (
    STATUS_EVENTS,
    ClaimedDelivery,
    Delivery,
    RunSnapshot,
    Webhook,
)
from runyard.store import rows
from runyard.store.fragments import insert_sql, placeholders
from runyard.types import new_ulid

if TYPE_CHECKING:
    from runyard.store.sql import Tx

_FIELDS = ("url", "events", "description", "enabled")
_DUE = (
    "((status = 'pending' AND next_attempt_at <= ?)"
    " OR (status = 'delivering' AND lease_expires_at < ?))"
)
LOST_LEASE_ERROR = "the worker delivering it stopped responding"


def webhook(row: dict[str, Any]) -> Webhook:
    return Webhook(
        id=row["id"],
        workspace_id=row["workspace_id"],
        url=row["url"],
        events=list(rows.loads(row["events"]) or []),
        description=row["description"],
        enabled=bool(row["enabled"]),
        secret_ciphertext=row["secret_ciphertext"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def delivery(row: dict[str, Any]) -> Delivery:
    retryable = row["run_error_retryable"]
    return Delivery(
        id=row["id"],
        seq=row["seq"],
        webhook_id=row["webhook_id"],
        workspace_id=row["workspace_id"],
        event_type=row["event_type"],
        status=row["status"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        response_status=row["response_status"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        run=RunSnapshot(
            id=row["run_id"],
            agent_id=row["run_agent_id"],
            status=row["run_status"],
            source=row["run_source"],
            created_at=row["run_created_at"],
            started_at=row["run_started_at"],
            completed_at=row["run_completed_at"],
            error_code=row["run_error_code"],
            error_message=row["run_error_message"],
            error_retryable=None if retryable is None else bool(retryable),
        ),
    )


class WebhookSql:
    """The webhook half of the store protocol (see :mod:`runyard.store.base`)."""

    skip_locked = ""

    @abstractmethod
    def _tx(self, write: bool = False) -> AbstractContextManager[Tx]: ...

    # ---- the outbox: called inside a run's status transaction ----------------------

    def _enqueue_webhooks(self, tx: Tx, run_id: str, status: str, now: int) -> None:
        """Enqueue the event ``status`` raises for every subscribed webhook of the run's
        workspace; call only after this transaction updated the run's row."""
        event = STATUS_EVENTS.get(status)
        if event is None:
            return
        subscribed = (
            " FROM runs r JOIN webhooks w ON w.workspace_id = r.workspace_id"
            " WHERE r.id = ? AND w.enabled = ? AND w.events LIKE ?"
        )
        pattern = f'%"{event}"%'
        # Most workspaces have no webhook: a plain SELECT finds that out for a
        # fraction of what an INSERT … SELECT that inserts nothing costs.
        if not tx.q(f"SELECT 1{subscribed} LIMIT 1", [run_id, True, pattern]):
            return
        # One fresh ULID per call, plus each webhook's own random tail: unique per row.
        prefix = f"whd_{new_ulid(now)}"
        # Where rows are locked (PostgreSQL), lock each webhook as the foreign key check
        # would: a webhook deleted concurrently is then skipped, instead of failing the
        # run's status change with a foreign key violation. SQLite serializes writers.
        lock = " FOR KEY SHARE OF w" if self.skip_locked else ""
        tx.x(
            "INSERT INTO webhook_deliveries (id, webhook_id, workspace_id, run_id, event_type,"
            " status, attempts, next_attempt_at, created_at, run_agent_id, run_status,"
            " run_source, run_created_at, run_started_at, run_completed_at, run_error_code,"
            " run_error_message, run_error_retryable)"
            " SELECT ? || substr(w.id, length(w.id) - 15), w.id, w.workspace_id, r.id, ?,"
            " 'pending', 0, ?, ?, r.agent_id, r.status, r.source, r.created_at, r.started_at,"
            " r.completed_at, r.error_code, r.error_message, r.error_retryable"
            f"{subscribed}{lock}",
            [prefix, event, now, now, run_id, True, pattern],
        )

    # ---- client side ---------------------------------------------------------------

    def insert_webhook(self, w: Webhook) -> None:
        with self._tx(write=True) as tx:
            tx.x(
                *insert_sql(
                    "webhooks",
                    {
                        "id": w.id,
                        "workspace_id": w.workspace_id,
                        "url": w.url,
                        "events": rows.dumps(w.events),
                        "description": w.description,
                        "enabled": w.enabled,
                        "secret_ciphertext": w.secret_ciphertext,
                        "created_at": w.created_at,
                        "updated_at": w.updated_at,
                    },
                )
            )

    def count_webhooks(self, workspace_id: str) -> int:
        with self._tx() as tx:
            found = tx.q(
                "SELECT COUNT(*) AS n FROM webhooks WHERE workspace_id = ?", [workspace_id]
            )
        return int(found[0]["n"])

    def list_webhooks(self, workspace_id: str) -> list[Webhook]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM webhooks WHERE workspace_id = ? ORDER BY id", [workspace_id]
            )
        return [webhook(r) for r in found]

    def get_webhook(self, workspace_id: str, webhook_id: str) -> Webhook | None:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM webhooks WHERE workspace_id = ? AND id = ?",
                [workspace_id, webhook_id],
            )
        return webhook(found[0]) if found else None

    def update_webhook(
        self, workspace_id: str, webhook_id: str, changes: dict[str, Any], now: int
    ) -> Webhook | None:
        """Set the given columns (see ``_FIELDS``, plus ``secret_ciphertext``)."""
        unknown = set(changes) - {*_FIELDS, "secret_ciphertext"}
        if unknown:
            raise ValueError(f"not webhook columns: {sorted(unknown)}")
        values = {k: rows.dumps(v) if k == "events" else v for k, v in changes.items()}
        values["updated_at"] = now
        sets = ", ".join(f"{k} = ?" for k in values)
        scope = "workspace_id = ? AND id = ?"
        with self._tx(write=True) as tx:
            tx.x(
                f"UPDATE webhooks SET {sets} WHERE {scope}",
                [*values.values(), workspace_id, webhook_id],
            )
            found = tx.q(f"SELECT * FROM webhooks WHERE {scope}", [workspace_id, webhook_id])
        return webhook(found[0]) if found else None

    def delete_webhook(self, workspace_id: str, webhook_id: str) -> bool:
        """Delete the webhook and, by cascade, its deliveries (pending ones included)."""
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    "DELETE FROM webhooks WHERE workspace_id = ? AND id = ?",
                    [workspace_id, webhook_id],
                )
                == 1
            )

    def list_deliveries(
        self, workspace_id: str, webhook_id: str, limit: int, before_seq: int | None
    ) -> list[Delivery]:
        """The webhook's deliveries, newest first, keyset-paged by ``seq``."""
        sql = "SELECT * FROM webhook_deliveries WHERE workspace_id = ? AND webhook_id = ?"
        params: list[Any] = [workspace_id, webhook_id]
        if before_seq is not None:
            sql += " AND seq < ?"
            params.append(before_seq)
        with self._tx() as tx:
            found = tx.q(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
        return [delivery(r) for r in found]

    # ---- dispatcher side -------------------------------------------------------------

    def claim_deliveries(
        self, lease_token: str, lease_until: int, now: int, limit: int, max_attempts: int
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries of enabled webhooks, oldest due first.

        Due: ``pending`` whose next attempt time has come, or ``delivering``
        whose lease expired (its dispatcher died); each claim counts as an
        attempt. An expired one that has used all ``max_attempts`` ends
        ``failed`` instead.
        """
        with self._tx(write=True) as tx:
            tx.x(
                "UPDATE webhook_deliveries SET status = 'failed', lease_token = NULL,"
                " lease_expires_at = NULL, next_attempt_at = NULL, last_error = ?"
                " WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'delivering'"
                f" AND lease_expires_at < ? AND attempts >= ?{self.skip_locked})"
                " AND status = 'delivering' AND lease_expires_at < ?",
                [LOST_LEASE_ERROR, now, max_attempts, now],
            )
            claimed = tx.q(
                "UPDATE webhook_deliveries SET status = 'delivering', attempts = attempts + 1,"
                " lease_token = ?, lease_expires_at = ?"
                f" WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE {_DUE}"
                " AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id"
                " AND w.enabled = ?)"
                f" ORDER BY d.next_attempt_at, d.seq LIMIT ?{self.skip_locked})"
                f" AND {_DUE} RETURNING id",
                [lease_token, lease_until, now, now, True, limit, now, now],
            )
            if not claimed:
                return []
            ids = [r["id"] for r in claimed]
            found = tx.q(
                "SELECT d.*, w.url AS webhook_url, w.secret_ciphertext AS webhook_secret"
                " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
                f" WHERE d.id IN ({placeholders(ids)}) ORDER BY d.next_attempt_at, d.seq",
                ids,
            )
        return [
            ClaimedDelivery(
                delivery=delivery(r),
                url=r["webhook_url"],
                secret_ciphertext=r["webhook_secret"],
                lease_token=lease_token,
            )
            for r in found
        ]

    def finish_delivery(
        self, delivery_id: str, lease_token: str, response_status: int, now: int
    ) -> bool:
        """Record a 2xx answer; False if the lease is no longer this caller's."""
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = ?,"
                    " response_status = ?, last_error = NULL, next_attempt_at = NULL,"
                    " lease_token = NULL, lease_expires_at = NULL"
                    " WHERE id = ? AND lease_token = ? AND status = 'delivering'",
                    [now, response_status, delivery_id, lease_token],
                )
                == 1
            )

    def retry_delivery(
        self,
        delivery_id: str,
        lease_token: str,
        retry_at: int | None,
        response_status: int | None,
        error: str,
    ) -> bool:
        """Record a failed attempt: due again at ``retry_at``, or ``failed`` for good
        when ``retry_at`` is None. False if the lease is no longer this caller's."""
        status = "pending" if retry_at is not None else "failed"
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?,"
                    " response_status = ?, last_error = ?, lease_token = NULL,"
                    " lease_expires_at = NULL"
                    " WHERE id = ? AND lease_token = ? AND status = 'delivering'",
                    [status, retry_at, response_status, error, delivery_id, lease_token],
                )
                == 1
            )
