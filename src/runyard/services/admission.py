"""Runtime admission: ``/exec`` may run only on a ready environment.

``/exec`` is the admission trigger. When the agent's environment is not
ready it asks for provisioning (a ``failed`` environment is queued again)
and holds the request for a bounded time; if capacity is still not ready it
answers the reference's retryable ``503``:
``{code: SERVICE_UNAVAILABLE, data: {reason: "runtime_admission_provisioning",
retryable: true, substrateProvider}}``. ``/status`` never triggers this.
"""

from __future__ import annotations

import asyncio
import time

from runyard.domain.entities import Agent
from runyard.errors import NotFound, ServiceUnavailable
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis

POLL_SECONDS = 0.05


class Admission:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    async def admit(self, agent: Agent, budget_seconds: float) -> Agent:
        """Return the agent once its environment is ready, or raise the retryable 503."""
        if agent.environment.status == "ready":
            return agent
        if agent.environment.status == "failed":
            await asyncio.to_thread(
                self._store.set_environment,
                agent.id,
                ("failed",),
                {"env_status": "pending", "env_attention": "none"},
                now_millis(),
            )
        deadline = time.monotonic() + min(budget_seconds, self._settings.admission_wait_seconds)
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            latest = await asyncio.to_thread(
                self._store.get_agent, agent.workspace_id, agent_id=agent.id
            )
            if latest is None:
                raise NotFound(f"agent {agent.id!r} not found")
            if latest.environment.status == "ready":
                return latest
        raise ServiceUnavailable(
            "Runtime capacity is being materialized for this agent. Please retry shortly.",
            {
                "reason": "runtime_admission_provisioning",
                "retryable": True,
                "substrateProvider": self._settings.substrate,
            },
        )
