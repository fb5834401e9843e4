"""Run history filtered for event-style listings (the URAgents events API), mixed into ``SqlStore``.

One query answers ``GET /v1/events`` and ``GET /v1/agents/{agentId}/events``:
scoped by workspace inside the SQL, optionally by agent, by a set of run
statuses and by ``started_at`` bounds (a run not started yet has a NULL
``started_at`` and so never matches a bound), newest first by ``seq``. Paging
is keyset on ``seq``: runs queued while a client pages have higher numbers
and never shift the pages it has yet to read.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runyard.domain.entities import Run
from runyard.store import rows
from runyard.store.fragments import placeholders

if TYPE_CHECKING:
    from runyard.store.sql import Tx


@dataclass(frozen=True)
class RunFilter:
    """What to select: ``None`` means no constraint; bounds are exclusive (ms)."""

    agent_id: str | None = None
    statuses: Sequence[str] | None = None
    started_after: int | None = None
    started_before: int | None = None
    before_seq: int | None = None


class EventQuerySql:
    """``filter_runs``: the one filtered, keyset-paged run listing."""

    @abstractmethod
    def _tx(self, write: bool = False) -> AbstractContextManager[Tx]: ...

    def filter_runs(self, workspace_id: str, where: RunFilter, limit: int) -> list[Run]:
        sql = "SELECT * FROM runs WHERE workspace_id = ?"
        params: list[Any] = [workspace_id]
        if where.agent_id is not None:
            sql += " AND agent_id = ?"
            params.append(where.agent_id)
        if where.statuses is not None:
            if not where.statuses:
                return []
            sql += f" AND status IN ({placeholders(where.statuses)})"
            params.extend(where.statuses)
        if where.started_after is not None:
            sql += " AND started_at > ?"
            params.append(where.started_after)
        if where.started_before is not None:
            sql += " AND started_at < ?"
            params.append(where.started_before)
        if where.before_seq is not None:
            sql += " AND seq < ?"
            params.append(where.before_seq)
        with self._tx() as tx:
            found = tx.q(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
        return [rows.run(r) for r in found]
