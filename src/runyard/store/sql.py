"""The SQL both backends share, written once with ``?`` placeholders.

:class:`SqlStore` implements the whole :class:`~runyard.store.base.Store`
protocol on top of three backend hooks: open a transaction (``_tx``), lock
the candidate agents' rows while claiming (``_lock_agents``), and the ``FOR
UPDATE SKIP LOCKED`` suffix (empty on SQLite, where ``BEGIN IMMEDIATE`` already
serializes writers). Every status change is a conditional update. This module
holds the client-side tables; the worker side of runs (``leases``), run
events, capabilities and schedules are mixins in their own modules.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from runyard.domain.entities import Agent, ApiKey, Run, Secret, Workspace
from runyard.errors import Conflict
from runyard.store import rows
from runyard.store.capabilities import CapabilitySql
from runyard.store.events_queries import EventQuerySql
from runyard.store.fragments import ACTIVE_SQL, insert_sql, placeholders
from runyard.store.leases import RunLeaseSql
from runyard.store.run_queries import RunQuerySql
from runyard.store.schedules import ScheduleSql
from runyard.store.webhooks import WebhookSql

log = logging.getLogger("runyard.store")


class Tx(Protocol):
    """One open transaction: queries return dict rows, commands a row count."""

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    def x(self, sql: str, params: Sequence[Any] = ()) -> int: ...


# WebhookSql comes first: it implements the outbox hook that RunEventSql (under
# RunLeaseSql) declares abstract, and the first definition in the MRO wins.
class SqlStore(
    WebhookSql, CapabilitySql, RunLeaseSql, ScheduleSql, EventQuerySql, RunQuerySql, ABC
):
    """Shared implementation; subclasses provide connections and locking."""

    backend = "sql"
    skip_locked = ""

    @abstractmethod
    def _tx(self, write: bool = False) -> AbstractContextManager[Tx]:
        """A transaction for writes; for reads (``write=False``) a context for ONE
        statement, which backends may run without an explicit transaction."""

    @abstractmethod
    def _is_unique_violation(self, exc: BaseException) -> bool: ...

    # ---- change notifications -------------------------------------------------
    # Events are ("queued" | "finished" | "event", run_id).  The default delivers them to
    # in-process subscribers after commit; PostgreSQL overrides ``_notify`` to
    # send them through NOTIFY so that every process hears them.

    def __init__(self) -> None:
        self._subs: list[Callable[[str, str], None]] = []
        self._pending = threading.local()

    def subscribe(self, callback: Callable[[str, str], None]) -> None:
        self._subs.append(callback)

    def _notify(self, tx: Tx, event: str, run_id: str) -> None:
        if not hasattr(self._pending, "items"):
            self._pending.items = []
        self._pending.items.append((event, run_id))

    def _take_pending(self) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = getattr(self._pending, "items", [])
        self._pending.items = []
        return items

    def _dispatch(self, events: list[tuple[str, str]]) -> None:
        # The write is committed by now: a subscriber's bug must neither turn it
        # into an error for the caller nor keep the other subscribers from hearing it.
        for event, run_id in events:
            for callback in list(self._subs):
                try:
                    callback(event, run_id)
                except Exception:
                    log.exception("run subscriber failed on %s %s", event, run_id)

    # ---- workspaces and keys -------------------------------------------------

    def _insert(self, table: str, params: dict[str, Any], what: str) -> None:
        sql, values = insert_sql(table, params)
        try:
            with self._tx(write=True) as tx:
                tx.x(sql, values)
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"{what} already exists") from exc
            raise

    def create_workspace(self, workspace: Workspace) -> None:
        self._insert(
            "workspaces",
            {"id": workspace.id, "slug": workspace.slug, "created_at": workspace.created_at},
            f"workspace {workspace.slug!r}",
        )

    def get_workspace(self, *, slug: str | None = None, id: str | None = None) -> Workspace | None:
        col, value = ("slug", slug) if slug is not None else ("id", id)
        with self._tx() as tx:
            found = tx.q(f"SELECT * FROM workspaces WHERE {col} = ?", [value])
        return rows.workspace(found[0]) if found else None

    def insert_key(self, key: ApiKey) -> None:
        self._insert(
            "api_keys",
            {
                "id": key.id,
                "workspace_id": key.workspace_id,
                "kind": key.kind.value,
                "agent_id": key.agent_id,
                "name": key.name,
                "prefix": key.prefix,
                "secret_hash": key.secret_hash,
                "created_at": key.created_at,
                "revoked_at": key.revoked_at,
                "last_used_at": key.last_used_at,
            },
            "key",
        )

    def find_key(self, secret_hash: str) -> ApiKey | None:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM api_keys WHERE secret_hash = ? AND revoked_at IS NULL", [secret_hash]
            )
        return rows.api_key(found[0]) if found else None

    def list_keys(self, workspace_id: str, agent_id: str | None) -> list[ApiKey]:
        sql = "SELECT * FROM api_keys WHERE workspace_id = ?"
        params: list[Any] = [workspace_id]
        if agent_id is not None:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        with self._tx() as tx:
            return [rows.api_key(r) for r in tx.q(sql + " ORDER BY id DESC", params)]

    def revoke_key(
        self, workspace_id: str, key_id: str, agent_id: str | None, now: int
    ) -> ApiKey | None:
        scope = "workspace_id = ? AND id = ?"
        params: list[Any] = [workspace_id, key_id]
        if agent_id is not None:
            scope += " AND agent_id = ?"
            params.append(agent_id)
        with self._tx(write=True) as tx:
            tx.x(
                f"UPDATE api_keys SET revoked_at = ? WHERE {scope} AND revoked_at IS NULL",
                [now, *params],
            )
            found = tx.q(f"SELECT * FROM api_keys WHERE {scope}", params)
        return rows.api_key(found[0]) if found else None

    def touch_key(self, key_id: str, now: int) -> None:
        with self._tx(write=True) as tx:
            tx.x("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [now, key_id])

    # ---- agents ------------------------------------------------------------------

    def insert_agent(self, agent: Agent) -> None:
        self._insert("agents", rows.agent_params(agent), f"an agent with slug {agent.slug!r}")

    def get_agent(
        self, workspace_id: str, *, slug: str | None = None, agent_id: str | None = None
    ) -> Agent | None:
        col, value = ("slug", slug) if slug is not None else ("id", agent_id)
        with self._tx() as tx:
            found = tx.q(
                f"SELECT * FROM agents WHERE workspace_id = ? AND {col} = ?", [workspace_id, value]
            )
        return rows.agent(found[0]) if found else None

    def list_agents(self, workspace_id: str, limit: int, before_id: str | None) -> list[Agent]:
        sql = "SELECT * FROM agents WHERE workspace_id = ?"
        params: list[Any] = [workspace_id]
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        with self._tx() as tx:
            found = tx.q(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [rows.agent(r) for r in found]

    def update_agent(
        self, workspace_id: str, agent_id: str, changes: dict[str, Any], now: int
    ) -> Agent | None:
        values = {
            k: rows.dumps(v) if k in rows.AGENT_JSON_FIELDS else v for k, v in changes.items()
        }
        values["updated_at"] = now
        sets = ", ".join(f"{k} = ?" for k in values)
        try:
            with self._tx(write=True) as tx:
                tx.x(
                    f"UPDATE agents SET {sets} WHERE workspace_id = ? AND id = ?",
                    [*values.values(), workspace_id, agent_id],
                )
                found = tx.q(
                    "SELECT * FROM agents WHERE workspace_id = ? AND id = ?",
                    [workspace_id, agent_id],
                )
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(
                    f"an agent with slug {changes.get('slug')!r} already exists"
                ) from exc
            raise
        return rows.agent(found[0]) if found else None

    def delete_agent(self, workspace_id: str, agent_id: str, now: int) -> bool:
        # Runs first, then the agent row: the same lock order as claim_run, so
        # PostgreSQL never sees the two deadlock.
        scope = "workspace_id = ? AND agent_id = ?"
        with self._tx(write=True) as tx:
            cancelled = tx.q(
                "UPDATE runs SET status = 'cancelled', updated_at = ?, completed_at = ?,"
                " error_code = 'agent_deleted', error_message = 'the agent was deleted',"
                f" error_retryable = ? WHERE {scope} AND status = 'queued' RETURNING id",
                [now, now, False, workspace_id, agent_id],
            )
            for r in cancelled:
                self._status_event(tx, r["id"], "cancelled", now, errorCode="agent_deleted")
                self._notify(tx, "finished", r["id"])
            requested = tx.q(
                f"UPDATE runs SET cancel_requested = ? WHERE {scope} AND status IN ({ACTIVE_SQL})"
                " AND cancel_requested = ? RETURNING id",
                [True, workspace_id, agent_id, False],
            )
            for r in requested:
                self._append_event(tx, r["id"], "cancel_requested", {}, now)
            tx.x(
                f"UPDATE api_keys SET revoked_at = ? WHERE {scope} AND revoked_at IS NULL",
                [now, workspace_id, agent_id],
            )
            deleted = tx.x(
                "DELETE FROM agents WHERE workspace_id = ? AND id = ?", [workspace_id, agent_id]
            )
            if deleted:
                # The worker tears the environment (home volume) down from this row.
                tx.x(
                    "INSERT INTO environment_teardowns (agent_id, workspace_id, requested_at)"
                    " VALUES (?, ?, ?)",
                    [agent_id, workspace_id, now],
                )
        return deleted == 1

    def pending_teardowns(self, limit: int) -> list[str]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT agent_id FROM environment_teardowns ORDER BY requested_at LIMIT ?",
                [limit],
            )
        return [r["agent_id"] for r in found]

    def finish_teardown(self, agent_id: str, done: bool) -> None:
        with self._tx(write=True) as tx:
            if done:
                tx.x("DELETE FROM environment_teardowns WHERE agent_id = ?", [agent_id])
            else:
                tx.x(
                    "UPDATE environment_teardowns SET attempts = attempts + 1 WHERE agent_id = ?",
                    [agent_id],
                )

    def environments_needing_work(self, limit: int) -> list[Agent]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM agents WHERE env_status = 'pending' OR recon_status = 'pending'"
                " ORDER BY env_updated_at LIMIT ?",
                [limit],
            )
        return [rows.agent(r) for r in found]

    def set_environment(
        self, agent_id: str, from_statuses: tuple[str, ...], changes: dict[str, Any], now: int
    ) -> bool:
        values = {**changes, "env_updated_at": now}
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    f"UPDATE agents SET {sets}"
                    f" WHERE id = ? AND env_status IN ({placeholders(from_statuses)})",
                    [*values.values(), agent_id, *from_statuses],
                )
                == 1
            )

    # ---- secrets -------------------------------------------------------------------------

    def put_secret(self, secret: Secret) -> Secret:
        """Create the secret, or replace projection, value and bindings of the same name."""
        with self._tx(write=True) as tx:
            updated = tx.x(
                "UPDATE secrets SET projection_name = ?, ciphertext = ?, value_length = ?,"
                " agent_ids = ?, updated_at = ? WHERE workspace_id = ? AND name = ?",
                [
                    secret.projection_name,
                    secret.ciphertext,
                    secret.value_length,
                    rows.dumps(secret.agent_ids),
                    secret.updated_at,
                    secret.workspace_id,
                    secret.name,
                ],
            )
            if not updated:
                sql, values = insert_sql(
                    "secrets",
                    {
                        "id": secret.id,
                        "workspace_id": secret.workspace_id,
                        "name": secret.name,
                        "projection_name": secret.projection_name,
                        "ciphertext": secret.ciphertext,
                        "value_length": secret.value_length,
                        "agent_ids": rows.dumps(secret.agent_ids),
                        "created_at": secret.created_at,
                        "updated_at": secret.updated_at,
                    },
                )
                tx.x(sql, values)
            found = tx.q(
                "SELECT * FROM secrets WHERE workspace_id = ? AND name = ?",
                [secret.workspace_id, secret.name],
            )
        return rows.secret(found[0])

    def list_secrets(self, workspace_id: str) -> list[Secret]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM secrets WHERE workspace_id = ? ORDER BY name", [workspace_id]
            )
        return [rows.secret(r) for r in found]

    def get_secret(self, workspace_id: str, name: str) -> Secret | None:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM secrets WHERE workspace_id = ? AND name = ?", [workspace_id, name]
            )
        return rows.secret(found[0]) if found else None

    def delete_secret(self, workspace_id: str, name: str) -> bool:
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    "DELETE FROM secrets WHERE workspace_id = ? AND name = ?", [workspace_id, name]
                )
                == 1
            )

    # ---- runs: client side --------------------------------------------------------

    def insert_run(self, run: Run, concurrency_limit: int) -> None:
        with self._tx(write=True) as tx:
            self._insert_run_tx(tx, run, concurrency_limit)

    def get_run(self, workspace_id: str, run_id: str, agent_id: str | None = None) -> Run | None:
        sql = "SELECT * FROM runs WHERE workspace_id = ? AND id = ?"
        params: list[Any] = [workspace_id, run_id]
        if agent_id is not None:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        with self._tx() as tx:
            found = tx.q(sql, params)
        return rows.run(found[0]) if found else None

    def list_runs(
        self, workspace_id: str, agent_id: str | None, limit: int, before_seq: int | None
    ) -> list[Run]:
        sql = "SELECT * FROM runs WHERE workspace_id = ?"
        params: list[Any] = [workspace_id]
        if agent_id is not None:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        if before_seq is not None:
            sql += " AND seq < ?"
            params.append(before_seq)
        with self._tx() as tx:
            found = tx.q(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
        return [rows.run(r) for r in found]

    def run_status(self, run_id: str) -> str | None:
        with self._tx() as tx:
            found = tx.q("SELECT status FROM runs WHERE id = ?", [run_id])
        return str(found[0]["status"]) if found else None
