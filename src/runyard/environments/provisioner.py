"""Moves environments through their lifecycle: ``pending → provisioning → ready``.

The worker runs this loop. Deleted agents' environments are torn down
(their home volume unmounted and removed). Provisioning creates (and, under bwrap as root,
mounts) the agent's home volume through the substrate;
reconciliation applies harness and capability changes
(``runtimeReconciliation.status`` ``pending → applied``): the
:class:`~runyard.environments.reconcile.Reconciler` runs on the event loop,
since it runs steps inside the agent's sandbox through the substrate. Each
step is a conditional update on the current status, so two workers never
provision the same environment twice.
"""

from __future__ import annotations

import asyncio
import logging

from runyard.domain.entities import Agent
from runyard.environments.reconcile import Reconciler
from runyard.sandbox.base import Substrate
from runyard.services.agents import parse_runtime_policy
from runyard.store.base import Store
from runyard.types import now_millis

log = logging.getLogger("runyard.environments")


class Provisioner:
    def __init__(self, store: Store, substrate: Substrate) -> None:
        self._store = store
        self._substrate = substrate
        self._reconciler = Reconciler(store, substrate)

    def step(self) -> int:
        """Do one round of teardowns and provisioning; returns how many environments
        changed. Reconciliations are left to :meth:`reconcile` (async)."""
        changed = self._tear_down()
        for agent in self._store.environments_needing_work(limit=32):
            if agent.environment.status == "pending":
                changed += self._provision(agent)
        return changed

    async def reconcile(self) -> int:
        """Apply every pending reconciliation of a ready environment."""
        agents = await asyncio.to_thread(self._store.environments_needing_work, 32)
        done = 0
        for agent in agents:
            env = agent.environment
            if env.status == "ready" and env.reconciliation_status == "pending":
                await self._reconciler.apply(agent)
                done += 1
        return done

    def _tear_down(self) -> int:
        """Remove deleted agents' homes. A home still busy (its last run is being
        killed) fails to unmount; the row stays and the next round retries."""
        done = 0
        for agent_id in self._store.pending_teardowns(limit=16):
            try:
                self._substrate.remove_home(agent_id)
            except OSError as exc:
                log.info("teardown of %s deferred: %s", agent_id, exc)
                self._store.finish_teardown(agent_id, done=False)
                continue
            self._store.finish_teardown(agent_id, done=True)
            done += 1
        return done

    def _provision(self, agent: Agent) -> int:
        if not self._store.set_environment(
            agent.id, ("pending",), {"env_status": "provisioning"}, now_millis()
        ):
            return 0
        try:
            self._substrate.prepare_home(agent.id, parse_runtime_policy(agent))
        except OSError as exc:
            log.warning("provisioning %s failed: %s", agent.id, exc)
            self._store.set_environment(
                agent.id,
                ("provisioning",),
                {
                    "env_status": "failed",
                    "env_attention": "required",
                    "env_last_error": f"cannot create the agent's home: {exc}",
                },
                now_millis(),
            )
            return 1
        now = now_millis()
        # Declared capabilities are applied by a reconciliation right after.
        has_caps = bool(self._store.list_capabilities(agent.workspace_id, agent.id))
        self._store.set_environment(
            agent.id,
            ("provisioning",),
            {
                "env_status": "ready",
                "env_attention": "none",
                "env_ready_at": now,
                "env_last_error": None,
                "recon_status": "pending" if has_caps else "applied",
                "recon_error": None,
            },
            now,
        )
        return 1

    async def loop(self, stop: asyncio.Event, interval: float) -> None:
        # /exec holds requests while an environment provisions: look often.
        interval = min(interval, 0.25)
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.step)
                await self.reconcile()
            except Exception:
                log.exception("environment provisioning round failed")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue
