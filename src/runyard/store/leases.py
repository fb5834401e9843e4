"""The worker side of the runs table: claims, leases, fencing and the reaper.

Mixed into :class:`~runyard.store.sql.SqlStore`. Every write here is a
conditional update that names the allowed source states and, after the
claim, the run's lease token, so a stale worker's late writes change
nothing; each status change appends its event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runyard.domain.entities import Run, RunOutcome
from runyard.domain.states import TERMINAL, RunStatus, sources_of
from runyard.store import rows
from runyard.store.base import LeaseState, ReapResult
from runyard.store.canvas import CanvasSql
from runyard.store.fragments import ACTIVE_SQL, placeholders

if TYPE_CHECKING:
    from runyard.store.sql import Tx


class RunLeaseSql(CanvasSql):
    """Claim, start, renew, finish and reap runs (the backend supplies ``skip_locked``)."""

    skip_locked = ""

    def _lock_agents(self, tx: Tx, agent_ids: Sequence[str]) -> None:
        """Serialize claims of these agents' runs (no-op where writers are serialized).

        ``agent_ids`` come sorted, and implementations must lock in that order,
        so that two claimers never wait for each other's agents (deadlock).
        """

    # ---- runs: worker side ------------------------------------------------------------

    def claim_run(self, worker_id: str, lease_token: str, lease_until: int, now: int) -> Run | None:
        candidates_sql = (
            "SELECT id, agent_id, concurrency_limit FROM runs r WHERE r.status = 'queued'"
            " AND (SELECT COUNT(*) FROM runs a WHERE a.agent_id = r.agent_id"
            f" AND a.status IN ({ACTIVE_SQL})) < r.concurrency_limit"
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
                    f" AND status IN ({ACTIVE_SQL})",
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
            started = tx.q(
                "UPDATE runs SET status = 'running', started_at = ?, updated_at = ?,"
                " harness_resolved = ?, evidence = ?"
                " WHERE id = ? AND lease_token = ? AND status = 'claimed' RETURNING attempt",
                [now, now, harness_resolved, rows.dumps(evidence), run_id, lease_token],
            )
            if started:
                self._status_event(tx, run_id, "running", now)
                if started[0]["attempt"] > 1:  # a later attempt starts a new canvas
                    tx.x("DELETE FROM run_steps WHERE run_id = ?", [run_id])
        return bool(started)

    def renew_lease(self, run_id: str, lease_token: str, lease_until: int, now: int) -> LeaseState:
        with self._tx(write=True) as tx:
            held = tx.x(
                "UPDATE runs SET lease_expires_at = ? WHERE id = ? AND lease_token = ?"
                f" AND status IN ({ACTIVE_SQL})",
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
                f" WHERE id = ? AND lease_token = ? AND status IN ({placeholders(sources)})",
                [*sets.values(), run_id, lease_token, *sources],
            )
            if done:
                if outcome.steps:
                    self._upsert_steps(tx, run_id, outcome.steps, now)
                if outcome.artifacts:
                    self._insert_artifacts(tx, run_id, outcome.artifacts, now)
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
        expired = f"status IN ({ACTIVE_SQL}) AND lease_expires_at < ?"
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
