"""The SQL both backends share, written once with ``?`` placeholders.

:class:`SqlStore` implements the whole :class:`~runyard.store.base.Store`
protocol on top of three backend hooks: open a transaction (``_tx``), lock
the candidate agents' rows while claiming (``_lock_agents``), and the ``FOR
UPDATE SKIP LOCKED`` suffix (empty on SQLite, where ``BEGIN IMMEDIATE`` already
serializes writers). Every status change is a conditional update.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from runyard.domain.entities import Agent, ApiKey, Run, RunOutcome, Secret, Workspace
from runyard.domain.states import ACTIVE, TERMINAL, RunStatus, sources_of
from runyard.errors import Conflict
from runyard.store import rows
from runyard.store.base import LeaseState, ReapResult
from runyard.store.capabilities import CapabilitySql
from runyard.store.events import RunEventSql
from runyard.store.schedules import ScheduleSql

_ACTIVE_SQL = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))

log = logging.getLogger("runyard.store")


class Tx(Protocol):
    """One open transaction: queries return dict rows, commands a row count."""

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    def x(self, sql: str, params: Sequence[Any] = ()) -> int: ...


def _in(values: Sequence[str]) -> str:
    return ", ".join("?" for _ in values)


def _insert_sql(table: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    cols = list(params)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({_in(cols)})",
        [params[c] for c in cols],
    )


class SqlStore(CapabilitySql, RunEventSql, ScheduleSql, ABC):
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

    def _lock_agents(self, tx: Tx, agent_ids: Sequence[str]) -> None:
        """Serialize claims of these agents' runs (no-op where writers are serialized).

        ``agent_ids`` come sorted, and implementations must lock in that order,
        so that two claimers never wait for each other's agents (deadlock).
        """

    # ---- workspaces and keys -------------------------------------------------

    def _insert(self, table: str, params: dict[str, Any], what: str) -> None:
        sql, values = _insert_sql(table, params)
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
                f"UPDATE runs SET cancel_requested = ? WHERE {scope} AND status IN ({_ACTIVE_SQL})"
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
                    f" WHERE id = ? AND env_status IN ({_in(from_statuses)})",
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
                sql, values = _insert_sql(
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

    # ---- runs: worker side ------------------------------------------------------------

    def claim_run(self, worker_id: str, lease_token: str, lease_until: int, now: int) -> Run | None:
        candidates_sql = (
            "SELECT id, agent_id, concurrency_limit FROM runs r WHERE r.status = 'queued'"
            " AND (SELECT COUNT(*) FROM runs a WHERE a.agent_id = r.agent_id"
            f" AND a.status IN ({_ACTIVE_SQL})) < r.concurrency_limit"
            " ORDER BY r.seq LIMIT 8" + self.skip_locked
        )
        with self._tx(write=True) as tx:
            candidates = tx.q(candidates_sql)
            if not candidates:
                return None
            self._lock_agents(tx, sorted({c["agent_id"] for c in candidates}))
            for cand in candidates:
                active = tx.q(
                    "SELECT COUNT(*) AS n FROM runs WHERE agent_id = ?"
                    f" AND status IN ({_ACTIVE_SQL})",
                    [cand["agent_id"]],
                )[0]["n"]
                if active >= cand["concurrency_limit"]:
                    continue
                claimed = tx.x(
                    "UPDATE runs SET status = 'claimed', lease_owner = ?, lease_token = ?,"
                    " lease_expires_at = ?, attempt = attempt + 1, updated_at = ?"
                    " WHERE id = ? AND status = 'queued'",
                    [worker_id, lease_token, lease_until, now, cand["id"]],
                )
                if claimed:
                    self._status_event(tx, cand["id"], "claimed", now)
                    return rows.run(tx.q("SELECT * FROM runs WHERE id = ?", [cand["id"]])[0])
        return None

    def start_run(
        self,
        run_id: str,
        lease_token: str,
        now: int,
        harness_resolved: str | None,
        evidence: dict[str, Any] | None,
    ) -> bool:
        with self._tx(write=True) as tx:
            started = tx.x(
                "UPDATE runs SET status = 'running', started_at = ?, updated_at = ?,"
                " harness_resolved = ?, evidence = ?"
                " WHERE id = ? AND lease_token = ? AND status = 'claimed'",
                [now, now, harness_resolved, rows.dumps(evidence), run_id, lease_token],
            )
            if started:
                self._status_event(tx, run_id, "running", now)
        return started == 1

    def renew_lease(self, run_id: str, lease_token: str, lease_until: int, now: int) -> LeaseState:
        with self._tx(write=True) as tx:
            held = tx.x(
                "UPDATE runs SET lease_expires_at = ? WHERE id = ? AND lease_token = ?"
                f" AND status IN ({_ACTIVE_SQL})",
                [lease_until, run_id, lease_token],
            )
            if not held:
                return LeaseState(held=False)
            found = tx.q("SELECT cancel_requested FROM runs WHERE id = ?", [run_id])
        return LeaseState(held=True, cancel_requested=bool(found[0]["cancel_requested"]))

    def finish_run(self, run_id: str, lease_token: str, outcome: RunOutcome, now: int) -> bool:
        target = RunStatus(outcome.status)  # ValueError for an unknown status
        if target not in TERMINAL:
            raise ValueError(f"finish_run needs a terminal status, not {target.value!r}")
        sources = [s.value for s in sources_of(target) if s is not RunStatus.QUEUED]
        sets: dict[str, Any] = {
            "status": target.value,
            "completed_at": now,
            "updated_at": now,
            "output": outcome.output,
            "error_code": outcome.error.code,
            "error_message": outcome.error.message,
            "error_retryable": outcome.error.retryable,
            "warnings": rows.dumps(outcome.warnings),
            "token_usage": rows.dumps(outcome.token_usage),
            "tool_usage": rows.dumps(outcome.tool_usage),
            "session_id": outcome.session_id,
            "lease_token": None,
            "lease_expires_at": None,
        }
        if outcome.evidence is not None:
            sets["evidence"] = rows.dumps(outcome.evidence)
        if outcome.harness_resolved is not None:
            sets["harness_resolved"] = outcome.harness_resolved
        assignments = ", ".join(f"{k} = ?" for k in sets)
        with self._tx(write=True) as tx:
            done = tx.x(
                f"UPDATE runs SET {assignments}"
                f" WHERE id = ? AND lease_token = ? AND status IN ({_in(sources)})",
                [*sets.values(), run_id, lease_token, *sources],
            )
            if done:
                if outcome.output is not None:
                    self._append_event(tx, run_id, "output", {"text": outcome.output}, now)
                self._status_event(
                    tx,
                    run_id,
                    target.value,
                    now,
                    outputLength=len(outcome.output or ""),
                    errorCode=outcome.error.code,
                )
                self._notify(tx, "finished", run_id)
        return done == 1

    def reap_expired(self, now: int, max_claims: int) -> ReapResult:
        """Rescue runs whose worker stopped renewing its lease.

        A run whose cancellation was requested (its agent was deleted) ends
        ``cancelled``: it never goes back to the queue. Otherwise a run that was
        claimed but never started re-queues (nothing of it ran) until it has
        been claimed ``max_claims`` times; a started run re-queues only while it
        has attempts left, otherwise it fails with the retryable
        ``worker_lost`` error, so no run is lost and none runs twice unless the
        caller allowed retries.
        """
        release = (
            "status = 'queued', lease_owner = NULL, lease_token = NULL,"
            " lease_expires_at = NULL, updated_at = ?"
        )
        ended = "lease_token = NULL, lease_expires_at = NULL, updated_at = ?, completed_at = ?"
        fail = (
            f"status = 'failed', {ended}, error_code = 'worker_lost',"
            " error_message = 'the worker running this run stopped responding',"
            " error_retryable = ?"
        )
        cancel = (
            f"status = 'cancelled', {ended}, error_code = 'cancelled',"
            " error_message = 'the run was cancelled; its worker stopped responding',"
            " error_retryable = ?"
        )
        expired = f"status IN ({_ACTIVE_SQL}) AND lease_expires_at < ?"
        with self._tx(write=True) as tx:
            cancelled = tx.q(
                f"UPDATE runs SET {cancel} WHERE {expired} AND cancel_requested = ? RETURNING id",
                [now, now, False, now, True],
            )
            requeued = tx.q(
                f"UPDATE runs SET {release} WHERE {expired} AND status = 'claimed'"
                " AND attempt < ? RETURNING id",
                [now, now, max_claims],
            )
            requeued += tx.q(
                f"UPDATE runs SET {release}, started_at = NULL WHERE {expired}"
                " AND status = 'running' AND attempt < max_attempts RETURNING id",
                [now, now],
            )
            failed = tx.q(
                f"UPDATE runs SET {fail} WHERE {expired} RETURNING id", [now, now, True, now]
            )
            for r in requeued:
                self._status_event(tx, r["id"], "queued", now, reason="worker_lost")
                self._notify(tx, "queued", r["id"])
            for r in failed:
                self._status_event(tx, r["id"], "failed", now, errorCode="worker_lost")
            for r in cancelled:
                self._status_event(tx, r["id"], "cancelled", now, errorCode="cancelled")
            for r in failed + cancelled:
                self._notify(tx, "finished", r["id"])
        return ReapResult(
            requeued=[r["id"] for r in requeued],
            failed=[r["id"] for r in failed],
            cancelled=[r["id"] for r in cancelled],
        )
