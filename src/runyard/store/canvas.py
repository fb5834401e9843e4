"""Live progress of runs (steps, output chunks) and artifacts, mixed into ``SqlStore``.

A canvas is not stored as such: what is stored are the facts it is drawn
from, the run's *steps* (each model call and tool call, keyed ``model:N`` /
``tool:N`` within the run) and its *artifacts*; the prompt and the output
come from the run's own row. :mod:`runyard.domain.canvas` draws the DAG at
read time. A run that makes no model or tool calls (a shell run) writes no
step at all.

The worker writes steps while a run goes on (fenced by the run's lease
token, like every worker write) and the rest of them, with the artifacts, in
the transaction that writes the run's terminal status (``finish_run``), so a
reader that sees a run ended sees all of its canvas. Steps are upserted by
key. Each step that ends appends a ``step`` event to the run's event log and
each artifact an ``artifact`` event, in the same transaction. Reads are
scoped by workspace through a join on ``runs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runyard.domain.canvas import ENDED_BLOCK, Artifact, Step, block_id
from runyard.store import rows
from runyard.store.events import RunEventSql
from runyard.store.fragments import insert_sql

if TYPE_CHECKING:
    from runyard.store.sql import Tx

_UPDATED = (
    "type",
    "name",
    "status",
    "content",
    "sources",
    "metadata",
    "started_at",
    "completed_at",
    "updated_at",
)
_UPSERT = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)


def step(row: dict[str, Any]) -> Step:
    return Step(
        key=row["key"],
        type=row["type"],
        name=row["name"],
        status=row["status"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        content=row["content"],
        sources=rows.loads(row["sources"]) or [],
        metadata=rows.loads(row["metadata"]) or {},
    )


def artifact(row: dict[str, Any]) -> Artifact:
    return Artifact(
        id=row["id"],
        run_id=row["run_id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        type=row["type"],
        media_type=row["media_type"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        created_at=row["created_at"],
    )


class CanvasSql(RunEventSql):
    """Steps and artifacts (see :mod:`runyard.store.base`); ``start_run`` and
    ``finish_run`` in :mod:`runyard.store.leases` write through this class."""

    # ---- worker side -------------------------------------------------------------

    def record_steps(self, run_id: str, lease_token: str, steps: Sequence[Step], now: int) -> bool:
        """Upsert a running run's steps under its lease; False (nothing written)
        when the lease is lost."""
        with self._tx(write=True) as tx:
            held = tx.x(
                "UPDATE runs SET updated_at = ? WHERE id = ? AND lease_token = ?"
                " AND status IN ('claimed', 'running')",
                [now, run_id, lease_token],
            )
            if not held:
                return False
            self._upsert_steps(tx, run_id, steps, now)
        return True

    def append_output(self, run_id: str, lease_token: str, text: str, now: int) -> bool:
        """Append an ``output_chunk`` event to a running run under its lease."""
        with self._tx(write=True) as tx:
            held = tx.x(
                "UPDATE runs SET updated_at = ? WHERE id = ? AND lease_token = ?"
                " AND status = 'running'",
                [now, run_id, lease_token],
            )
            if held:
                self._append_event(tx, run_id, "output_chunk", {"text": text}, now)
        return bool(held)

    def _upsert_steps(self, tx: Tx, run_id: str, steps: Sequence[Step], now: int) -> None:
        """Write ``steps``; call only after this transaction updated the run's row."""
        if not steps:
            return
        before = {
            r["key"]: r["status"]
            for r in tx.q("SELECT key, status FROM run_steps WHERE run_id = ?", [run_id])
        }
        for s in steps:
            sql, values = insert_sql(
                "run_steps",
                {
                    "run_id": run_id,
                    "key": s.key,
                    "type": s.type,
                    "name": s.name,
                    "status": s.status,
                    "content": s.content,
                    "sources": rows.dumps(s.sources),
                    "metadata": rows.dumps(s.metadata),
                    "started_at": s.started_at,
                    "completed_at": s.completed_at,
                    "updated_at": now,
                },
            )
            tx.x(f"{sql} ON CONFLICT (run_id, key) DO UPDATE SET {_UPSERT}", values)
            if s.status in ENDED_BLOCK and before.get(s.key) != s.status:
                event = {
                    "blockId": block_id(run_id, s.key),
                    "type": s.type,
                    "name": s.name,
                    "status": s.status,
                }
                self._append_event(tx, run_id, "step", event, now)

    def _insert_artifacts(
        self, tx: Tx, run_id: str, artifacts: Sequence[Artifact], now: int
    ) -> None:
        """Record ``artifacts``; call only after this transaction updated the run's row."""
        for a in artifacts:
            sql, values = insert_sql(
                "artifacts",
                {
                    "id": a.id,
                    "run_id": run_id,
                    "workspace_id": a.workspace_id,
                    "name": a.name,
                    "type": a.type,
                    "media_type": a.media_type,
                    "size_bytes": a.size_bytes,
                    "sha256": a.sha256,
                    "created_at": a.created_at,
                },
            )
            tx.x(f"{sql} ON CONFLICT (id) DO NOTHING", values)
            self._append_event(
                tx,
                run_id,
                "artifact",
                {"artifactId": a.id, "name": a.name, "sizeBytes": a.size_bytes, "sha256": a.sha256},
                now,
            )

    # ---- client side (scoped by workspace) ------------------------------------------

    def list_steps(self, workspace_id: str, run_id: str) -> list[Step]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT s.* FROM run_steps s JOIN runs r ON r.id = s.run_id"
                " WHERE r.workspace_id = ? AND s.run_id = ? ORDER BY s.started_at, s.key",
                [workspace_id, run_id],
            )
        return [step(r) for r in found]

    def list_artifacts(self, workspace_id: str, run_id: str) -> list[Artifact]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM artifacts WHERE workspace_id = ? AND run_id = ? ORDER BY name, id",
                [workspace_id, run_id],
            )
        return [artifact(r) for r in found]

    def get_artifact(self, artifact_id: str) -> Artifact | None:
        """One artifact by id, unscoped: only for signed download links, which
        name the artifact they were issued for."""
        with self._tx() as tx:
            found = tx.q("SELECT * FROM artifacts WHERE id = ?", [artifact_id])
        return artifact(found[0]) if found else None
