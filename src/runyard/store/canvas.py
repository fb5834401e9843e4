"""Live progress of runs (canvas blocks, output chunks) and artifacts, mixed into ``SqlStore``.

The worker writes the first block when the run starts (in ``start_run``'s
transaction), more while it goes on (fenced by the run's lease token, like
every worker write) and all of them once more, with the artifacts, in the
transaction that writes the run's terminal status (see ``finish_run``), so a
reader that sees a run ended also sees its whole canvas and every artifact.
Blocks are upserted by id: rebuilding a canvas updates the same rows (the
final rebuild may add tool calls and so re-link ended blocks). Each
block that ends appends a ``step`` event to the run's event log, and each
artifact an ``artifact`` event, in the same transaction. Reads are scoped by
workspace through a join on ``runs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runyard.domain.canvas import Artifact, Block
from runyard.store import rows
from runyard.store.events import RunEventSql
from runyard.store.fragments import insert_sql

if TYPE_CHECKING:
    from runyard.store.sql import Tx

_BLOCK_COLUMNS = (
    "position, name, type, status, content, sources, parents, metadata,"
    " started_at, completed_at, updated_at"
)


def block(row: dict[str, Any]) -> Block:
    return Block(
        id=row["id"],
        run_id=row["run_id"],
        position=row["position"],
        name=row["name"],
        type=row["type"],
        status=row["status"],
        content=row["content"],
        sources=rows.loads(row["sources"]) or [],
        parents=rows.loads(row["parents"]) or [],
        metadata=rows.loads(row["metadata"]) or {},
        started_at=row["started_at"],
        completed_at=row["completed_at"],
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


def _step_event(b: Block) -> dict[str, Any]:
    return {"blockId": b.id, "type": b.type, "name": b.name, "status": b.status}


class CanvasSql(RunEventSql):
    """Blocks and artifacts (see :mod:`runyard.store.base`); ``finish_run`` in
    :mod:`runyard.store.leases` writes the final canvas through this class."""

    # ---- worker side -------------------------------------------------------------

    def record_blocks(
        self, run_id: str, lease_token: str, blocks: Sequence[Block], now: int
    ) -> bool:
        """Upsert a running run's blocks under its lease; False (nothing written)
        when the lease is lost."""
        with self._tx(write=True) as tx:
            held = tx.x(
                "UPDATE runs SET updated_at = ? WHERE id = ? AND lease_token = ?"
                " AND status IN ('claimed', 'running')",
                [now, run_id, lease_token],
            )
            if not held:
                return False
            self._upsert_blocks(tx, run_id, blocks, now)
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

    def _upsert_blocks(self, tx: Tx, run_id: str, blocks: Sequence[Block], now: int) -> None:
        """Write ``blocks``; call only after this transaction updated the run's row."""
        if not blocks:
            return
        before = {
            r["id"]: r["status"]
            for r in tx.q("SELECT id, status FROM canvas_blocks WHERE run_id = ?", [run_id])
        }
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in (c.strip() for c in _BLOCK_COLUMNS.split(","))
        )
        for b in blocks:
            params = {
                "id": b.id,
                "run_id": run_id,
                "position": b.position,
                "name": b.name,
                "type": b.type,
                "status": b.status,
                "content": b.content,
                "sources": rows.dumps(b.sources),
                "parents": rows.dumps(b.parents),
                "metadata": rows.dumps(b.metadata),
                "started_at": b.started_at,
                "completed_at": b.completed_at,
                "updated_at": now,
            }
            sql, values = insert_sql("canvas_blocks", params)
            tx.x(f"{sql} ON CONFLICT (id) DO UPDATE SET {updates}", values)
            if b.ended() and before.get(b.id) != b.status:
                self._append_event(tx, run_id, "step", _step_event(b), now)

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

    def list_blocks(self, workspace_id: str, run_id: str) -> list[Block]:
        with self._tx() as tx:
            found = tx.q(
                "SELECT b.* FROM canvas_blocks b JOIN runs r ON r.id = b.run_id"
                " WHERE r.workspace_id = ? AND b.run_id = ? ORDER BY b.position, b.id",
                [workspace_id, run_id],
            )
        return [block(r) for r in found]

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
