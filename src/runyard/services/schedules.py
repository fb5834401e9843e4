"""Schedules of an agent: list, create, read, update, delete, pause and resume.

Every call is scoped by the caller's workspace and the agent's slug; another
workspace's schedule is a 404. ``next_run_at`` is kept only while the
schedule is active (enabled and not paused) and is recomputed from *now*
whenever the schedule becomes active again or its cron or timezone changes.
"""

from __future__ import annotations

from typing import Any

from runyard.domain.entities import Agent
from runyard.domain.schedules import (
    MAX_PER_AGENT,
    Schedule,
    ScheduleCreate,
    SchedulePatch,
    next_run_after,
)
from runyard.errors import Conflict, NotFound
from runyard.store.base import Store
from runyard.types import new_id, now_millis

_NOT_NULL = ("name", "cron", "timezone", "prompt", "enabled")


class ScheduleService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _agent(self, workspace_id: str, slug: str) -> Agent:
        agent = self._store.get_agent(workspace_id, slug=slug)
        if agent is None:
            raise NotFound(f"agent {slug!r} not found")
        return agent

    def _get(self, agent: Agent, schedule_id: str) -> Schedule:
        found = self._store.get_schedule(agent.workspace_id, agent.id, schedule_id)
        if found is None:
            raise NotFound(f"schedule {schedule_id!r} not found")
        return found

    def list_all(self, workspace_id: str, slug: str) -> list[Schedule]:
        agent = self._agent(workspace_id, slug)
        return self._store.list_schedules(workspace_id, agent.id)

    def get(self, workspace_id: str, slug: str, schedule_id: str) -> Schedule:
        return self._get(self._agent(workspace_id, slug), schedule_id)

    def create(self, workspace_id: str, slug: str, body: ScheduleCreate) -> Schedule:
        agent = self._agent(workspace_id, slug)
        if self._store.count_schedules(workspace_id, agent.id) >= MAX_PER_AGENT:
            raise Conflict(f"an agent may have at most {MAX_PER_AGENT} schedules")
        now = now_millis()
        sched = Schedule(
            id=new_id("sched"),
            workspace_id=workspace_id,
            agent_id=agent.id,
            name=body.name,
            cron=body.cron,
            timezone=body.timezone,
            prompt=body.prompt,
            enabled=body.enabled,
            paused=False,
            created_at=now,
            updated_at=now,
            next_run_at=next_run_after(body.cron, body.timezone, now) if body.enabled else None,
            harness=body.harness,
            timeout_seconds=body.timeout_seconds,
        )
        if not self._store.insert_schedule(sched):
            raise NotFound(f"agent {slug!r} not found")
        return sched

    def update(
        self, workspace_id: str, slug: str, schedule_id: str, body: SchedulePatch
    ) -> Schedule:
        agent = self._agent(workspace_id, slug)
        current = self._get(agent, schedule_id)
        changes = body.changes(_NOT_NULL)
        if not changes:
            return current
        return self._save(agent, current, changes)

    def set_paused(self, workspace_id: str, slug: str, schedule_id: str, paused: bool) -> Schedule:
        agent = self._agent(workspace_id, slug)
        current = self._get(agent, schedule_id)
        return self._save(agent, current, {"paused": paused})

    def delete(self, workspace_id: str, slug: str, schedule_id: str) -> None:
        agent = self._agent(workspace_id, slug)
        if not self._store.delete_schedule(workspace_id, agent.id, schedule_id):
            raise NotFound(f"schedule {schedule_id!r} not found")

    def _save(self, agent: Agent, current: Schedule, changes: dict[str, Any]) -> Schedule:
        """Apply ``changes``; recompute the next run when the timing or activity changed."""
        cron = changes.get("cron", current.cron)
        tz = changes.get("timezone", current.timezone)
        active = changes.get("enabled", current.enabled) and not changes.get(
            "paused", current.paused
        )
        now = now_millis()
        timing = cron != current.cron or tz != current.timezone
        if not active:
            changes["next_run_at"] = None
        elif timing or not current.active or current.next_run_at is None:
            changes["next_run_at"] = next_run_after(cron, tz, now)
        saved = self._store.update_schedule(agent.workspace_id, agent.id, current.id, changes, now)
        if saved is None:
            raise NotFound(f"schedule {current.id!r} not found")
        return saved
