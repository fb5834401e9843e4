"""Filtered, keyset-paged run listings for the compat surfaces, mixed into ``SqlStore``.

Every filter is applied in SQL and the workspace (and, for a personal key,
the "own runs or team runs" rule) is part of the ``WHERE`` clause. Pages are
keyed on ``(sort column, seq)``: the cursor names the last row seen, so
walking pages never repeats a row or skips one that existed when the walk
began, however many runs are added meanwhile. Each row comes with its
agent's slug and environment status (``LEFT JOIN``: a deleted agent's runs
stay listed).
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from runyard.domain.entities import Agent, Run
from runyard.store import rows
from runyard.store.fragments import placeholders

if TYPE_CHECKING:
    from runyard.store.sql import Tx

SortColumn = Literal["created_at", "updated_at"]

# Environment states in which a queued run waits while its environment is being
# built. (A ``pending`` environment is not being built: async runs do not wait for it.)
PROVISIONING_ENV = ("provisioning",)
_PROVISIONING_SQL = ", ".join(f"'{s}'" for s in PROVISIONING_ENV)


@dataclass(frozen=True)
class RunQuery:
    """One page request: scope, filters (``None`` = any) and the keyset position."""

    workspace_id: str
    limit: int
    viewer: str | None = None  # a personal key's id: only its runs and team runs
    statuses: tuple[str, ...] | None = None
    provisioning: bool | None = None  # queued runs only: environment not ready (yet)
    agent_slug: str | None = None
    model: str | None = None
    creator: str | None = None
    sources: tuple[str, ...] | None = None
    created_after: int | None = None
    created_before: int | None = None
    sort_by: SortColumn = "created_at"
    descending: bool = True
    after: tuple[int, int] | None = None  # (sort value, seq) of the last row seen


@dataclass(frozen=True)
class ListedRun:
    """A run with the agent facts a listing renders (``None`` once the agent is gone)."""

    run: Run
    agent_slug: str | None
    env_status: str | None


class RunQuerySql:
    """``query_runs`` (filtered pages) and ``oldest_agent`` over the shared SQL."""

    backend: str

    @abstractmethod
    def _tx(self, write: bool = False) -> AbstractContextManager[Tx]: ...

    def _json_text(self, column: str, key: str) -> str:
        """SQL for the text value of ``column``'s top-level JSON ``key`` (a literal)."""
        if self.backend == "postgres":
            return f"(CAST({column} AS jsonb) ->> '{key}')"
        return f"json_extract({column}, '$.{key}')"

    def query_runs(self, q: RunQuery) -> list[ListedRun]:
        where = ["r.workspace_id = ?"]
        params: list[Any] = [q.workspace_id]
        if q.viewer is not None:
            where.append("(r.creator = ? OR r.team = ?)")
            params += [q.viewer, True]
        if q.statuses is not None:
            where.append(f"r.status IN ({placeholders(q.statuses)})")
            params += list(q.statuses)
        if q.provisioning is not None:
            inside = "IN" if q.provisioning else "NOT IN"
            where.append(f"COALESCE(a.env_status, 'ready') {inside} ({_PROVISIONING_SQL})")
        for column, value in (
            ("a.slug", q.agent_slug),
            (self._json_text("r.request", "model"), q.model),
            ("r.creator", q.creator),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if q.sources is not None:
            where.append(f"r.source IN ({placeholders(q.sources)})")
            params += list(q.sources)
        if q.created_after is not None:
            where.append("r.created_at > ?")
            params.append(q.created_after)
        if q.created_before is not None:
            where.append("r.created_at < ?")
            params.append(q.created_before)
        col = f"r.{q.sort_by}"
        cmp, order = ("<", "DESC") if q.descending else (">", "ASC")
        if q.after is not None:
            where.append(f"({col} {cmp} ? OR ({col} = ? AND r.seq {cmp} ?))")
            params += [q.after[0], q.after[0], q.after[1]]
        sql = (
            "SELECT r.*, a.slug AS agent_slug, a.env_status AS agent_env_status"
            " FROM runs r LEFT JOIN agents a ON a.id = r.agent_id"
            f" WHERE {' AND '.join(where)} ORDER BY {col} {order}, r.seq {order} LIMIT ?"
        )
        with self._tx() as tx:
            found = tx.q(sql, [*params, q.limit])
        return [
            ListedRun(rows.run(r), r.get("agent_slug"), r.get("agent_env_status")) for r in found
        ]

    def get_listed_run(
        self, workspace_id: str, run_id: str, viewer: str | None = None
    ) -> ListedRun | None:
        sql = (
            "SELECT r.*, a.slug AS agent_slug, a.env_status AS agent_env_status"
            " FROM runs r LEFT JOIN agents a ON a.id = r.agent_id"
            " WHERE r.workspace_id = ? AND r.id = ?"
        )
        params: list[Any] = [workspace_id, run_id]
        if viewer is not None:
            sql += " AND (r.creator = ? OR r.team = ?)"
            params += [viewer, True]
        with self._tx() as tx:
            found = tx.q(sql, params)
        if not found:
            return None
        r = found[0]
        return ListedRun(rows.run(r), r.get("agent_slug"), r.get("agent_env_status"))

    def oldest_agent(self, workspace_id: str) -> Agent | None:
        with self._tx() as tx:
            found = tx.q(
                "SELECT * FROM agents WHERE workspace_id = ? ORDER BY created_at, id LIMIT 1",
                [workspace_id],
            )
        return rows.agent(found[0]) if found else None
