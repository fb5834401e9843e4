"""SDK methods for an agent's cron schedules, mixed into both clients.

Written like :class:`~runyard.sdk.operations.Operations`: each method builds a
plan over the control-plane path ``…/agents/{slug}/schedules`` and hands it
to ``_drive``. ``agent`` is a slug or an ``agent_…`` id.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar
from urllib.parse import quote

from runyard.sdk.core import Plan

R = TypeVar("R")


def _path(schedule_id: str | None = None, action: str | None = None) -> str:
    tail = "schedules"
    if schedule_id is not None:
        tail += "/" + quote(schedule_id, safe="")
    if action is not None:
        tail += "/" + action
    return tail


class ScheduleOperations(Generic[R]):
    """Schedule methods; the client classes supply ``_drive`` and ``_control``."""

    def _drive(self, plan: Plan) -> R:
        raise NotImplementedError

    def _control(self, agent: str, tail: str, **spec: Any) -> Plan:
        raise NotImplementedError

    def list_schedules(self, agent: str) -> R:
        """``{schedules: [...]}`` of the agent."""
        return self._drive(self._control(agent, _path(), method="GET"))

    def create_schedule(
        self,
        agent: str,
        *,
        name: str,
        cron: str,
        prompt: str,
        timezone: str | None = None,
        enabled: bool | None = None,
        harness: str | None = None,
        timeout_seconds: int | None = None,
    ) -> R:
        """Create a schedule; cron has 5 fields, or 6 with seconds last."""
        body = {
            k: v
            for k, v in {
                "name": name,
                "cron": cron,
                "prompt": prompt,
                "timezone": timezone,
                "enabled": enabled,
                "harness": harness,
                "timeoutSeconds": timeout_seconds,
            }.items()
            if v is not None
        }
        return self._drive(self._control(agent, _path(), method="POST", body=body))

    def get_schedule(self, agent: str, schedule_id: str) -> R:
        return self._drive(self._control(agent, _path(schedule_id), method="GET"))

    def update_schedule(self, agent: str, schedule_id: str, **changes: Any) -> R:
        """PATCH the schedule with wire-named fields (``timeoutSeconds``, …)."""
        return self._drive(self._control(agent, _path(schedule_id), method="PATCH", body=changes))

    def delete_schedule(self, agent: str, schedule_id: str) -> R:
        return self._drive(self._control(agent, _path(schedule_id), method="DELETE"))

    def pause_schedule(self, agent: str, schedule_id: str) -> R:
        return self._drive(self._control(agent, _path(schedule_id, "pause"), method="POST"))

    def resume_schedule(self, agent: str, schedule_id: str) -> R:
        """Resume; the next run is recomputed from now (missed ticks do not run)."""
        return self._drive(self._control(agent, _path(schedule_id, "resume"), method="POST"))
