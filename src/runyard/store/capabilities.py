"""Capability storage, mixed into :class:`~runyard.store.sql.SqlStore`.

Kept apart from ``sql.py`` (already long) but written in the same shared SQL.
Every client-side change to an agent's capability set happens in one
transaction that also bumps the agent's ``capability_version`` (the public
``stateVersion``) and ``recon_generation``, rewrites the agent's
``capability_bindings`` document, and moves a ready environment's
reconciliation to ``pending``. The worker finishes a reconciliation only if
the generation it applied is still current, so a change made while it was
applying is never marked applied.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from runyard.domain.capabilities import Capability
from runyard.errors import Conflict
from runyard.store import rows

if TYPE_CHECKING:
    from runyard.store.sql import Tx


def capability(row: dict[str, Any]) -> Capability:
    return Capability(
        id=row["id"],
        workspace_id=row["workspace_id"],
        agent_id=row["agent_id"],
        kind=row["kind"],
        name=row["name"],
        status=row["status"],
        spec=rows.loads(row["spec"]) or {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        evidence_status=row["evidence_status"],
        evidence_error=row["evidence_error"],
        evidence_updated_at=row["evidence_updated_at"],
    )


_SCOPE = "workspace_id = ? AND agent_id = ?"


class CapabilitySql:
    """The capability half of the store protocol (see :mod:`runyard.store.base`)."""

    @abstractmethod
    def _tx(self, write: bool = False) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _is_unique_violation(self, exc: BaseException) -> bool: ...

    def list_capabilities(self, workspace_id: str, agent_id: str) -> list[Capability]:
        with self._tx() as tx:
            found = tx.q(
                f"SELECT * FROM capabilities WHERE {_SCOPE} ORDER BY id", [workspace_id, agent_id]
            )
        return [capability(r) for r in found]

    def get_capability(
        self, workspace_id: str, agent_id: str, capability_id: str
    ) -> Capability | None:
        with self._tx() as tx:
            found = tx.q(
                f"SELECT * FROM capabilities WHERE {_SCOPE} AND id = ?",
                [workspace_id, agent_id, capability_id],
            )
        return capability(found[0]) if found else None

    def capability_version(self, workspace_id: str, agent_id: str) -> int | None:
        with self._tx() as tx:
            found = tx.q(
                "SELECT capability_version FROM agents WHERE workspace_id = ? AND id = ?",
                [workspace_id, agent_id],
            )
        return int(found[0]["capability_version"]) if found else None

    def _changed(self, tx: Tx, workspace_id: str, agent_id: str, now: int) -> int | None:
        """Bump versions, rewrite bindings, queue reconciliation; the new stateVersion."""
        caps = tx.q(
            f"SELECT id, kind, name, status FROM capabilities WHERE {_SCOPE} ORDER BY id",
            [workspace_id, agent_id],
        )
        bindings = [
            {"capabilityId": c["id"], "kind": c["kind"], "name": c["name"], "status": c["status"]}
            for c in caps
        ]
        tx.x(
            "UPDATE agents SET capability_version = capability_version + 1,"
            " recon_generation = recon_generation + 1, capability_bindings = ?, updated_at = ?,"
            " recon_status = CASE WHEN env_status = 'ready' THEN 'pending' ELSE recon_status END,"
            " recon_error = CASE WHEN env_status = 'ready' THEN NULL ELSE recon_error END,"
            " env_updated_at = CASE WHEN env_status = 'ready' THEN ? ELSE env_updated_at END"
            " WHERE workspace_id = ? AND id = ?",
            [rows.dumps(bindings), now, now, workspace_id, agent_id],
        )
        found = tx.q(
            "SELECT capability_version FROM agents WHERE workspace_id = ? AND id = ?",
            [workspace_id, agent_id],
        )
        return int(found[0]["capability_version"]) if found else None

    def save_capability(self, cap: Capability, create: bool, now: int) -> int | None:
        """Insert, or replace the declared fields of, one capability (evidence resets).

        Returns the agent's new stateVersion, or None if the agent (or, for an
        update, the capability) does not exist in that workspace.
        """
        try:
            with self._tx(write=True) as tx:
                agent = tx.q(
                    "SELECT id FROM agents WHERE workspace_id = ? AND id = ?",
                    [cap.workspace_id, cap.agent_id],
                )
                if not agent:
                    return None
                if create:
                    tx.x(
                        "INSERT INTO capabilities (id, workspace_id, agent_id, kind, name,"
                        " status, spec, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            cap.id,
                            cap.workspace_id,
                            cap.agent_id,
                            cap.kind,
                            cap.name,
                            cap.status,
                            rows.dumps(cap.spec),
                            now,
                            now,
                        ],
                    )
                else:
                    done = tx.x(
                        "UPDATE capabilities SET name = ?, status = ?, spec = ?, updated_at = ?,"
                        " evidence_status = NULL, evidence_error = NULL,"
                        f" evidence_updated_at = NULL WHERE {_SCOPE} AND id = ?",
                        [
                            cap.name,
                            cap.status,
                            rows.dumps(cap.spec),
                            now,
                            cap.workspace_id,
                            cap.agent_id,
                            cap.id,
                        ],
                    )
                    if not done:
                        return None
                return self._changed(tx, cap.workspace_id, cap.agent_id, now)
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(
                    f"the agent already has a {cap.kind} capability named {cap.name!r}",
                    {"field": "capability.name"},
                ) from exc
            raise

    def delete_capability(
        self, workspace_id: str, agent_id: str, capability_id: str, now: int
    ) -> int | None:
        """Remove one capability; the new stateVersion, or None if it was not found."""
        with self._tx(write=True) as tx:
            done = tx.x(
                f"DELETE FROM capabilities WHERE {_SCOPE} AND id = ?",
                [workspace_id, agent_id, capability_id],
            )
            if not done:
                return None
            return self._changed(tx, workspace_id, agent_id, now)

    # ---- worker side ---------------------------------------------------------------

    def record_capability_evidence(
        self, capability_id: str, updated_at: int, status: str | None, error: str | None, now: int
    ) -> bool:
        """Record evidence unless the capability was changed (or deleted) since ``updated_at``."""
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    "UPDATE capabilities SET evidence_status = ?, evidence_error = ?,"
                    " evidence_updated_at = ? WHERE id = ? AND updated_at = ?",
                    [status, error, now, capability_id, updated_at],
                )
                == 1
            )

    def reconciliation_generation(self, agent_id: str) -> int | None:
        with self._tx() as tx:
            found = tx.q("SELECT recon_generation FROM agents WHERE id = ?", [agent_id])
        return int(found[0]["recon_generation"]) if found else None

    def bump_reconciliation(self, agent_id: str) -> None:
        """Invalidate a reconciliation in flight (its result no longer covers the agent)."""
        with self._tx(write=True) as tx:
            tx.x(
                "UPDATE agents SET recon_generation = recon_generation + 1 WHERE id = ?",
                [agent_id],
            )

    def finish_reconciliation(
        self, agent_id: str, generation: int, status: str, error: str | None, now: int
    ) -> bool:
        """Mark the pending reconciliation done, if nothing changed since ``generation``."""
        with self._tx(write=True) as tx:
            return (
                tx.x(
                    "UPDATE agents SET recon_status = ?, recon_error = ?, env_updated_at = ?"
                    " WHERE id = ? AND recon_generation = ? AND env_status = 'ready'"
                    " AND recon_status = 'pending'",
                    [status, error, now, agent_id, generation],
                )
                == 1
            )
