"""The scheduler: fires due schedules as runs with ``source = "SCHEDULED_AGENT"``.

Every worker runs this loop; a tick fires once however many run it, because
each fire starts with a conditional update of ``next_run_at`` from the value
read to the next tick after *now* (see ``Store.claim_schedule``). Computing
the next tick from now, not from the missed tick, means that ticks missed
while no worker ran fire once, not once each. A fired tick is submitted
through :meth:`RunService.submit` like any run, so it queues behind the
agent's concurrency limit. Any failure to spawn (the agent was deleted, the
harness is no longer enabled, the environment is not ready…) is recorded in
``last_spawn_error`` and the schedule keeps going; a successful spawn clears
it.
"""

from __future__ import annotations

import asyncio
import logging

from runyard.domain.requests import ExecRequest
from runyard.domain.schedules import SCHEDULED_SOURCE, Schedule, next_run_after
from runyard.errors import NotFound, RunyardError
from runyard.services.admission import Admission
from runyard.services.runs import RunService
from runyard.store.base import Store
from runyard.types import now_millis

log = logging.getLogger("runyard.scheduler")

BATCH = 64
MAX_ERROR = 1000
INTERVAL_SECONDS = 1.0


class Scheduler:
    def __init__(self, store: Store, runs: RunService, admission: Admission) -> None:
        self._store = store
        self._runs = runs
        self._admission = admission

    async def tick(self) -> int:
        """Fire every due schedule this worker wins; returns how many it fired."""
        now = now_millis()
        due = await asyncio.to_thread(self._store.due_schedules, now, BATCH)
        fired = 0
        for sched in due:
            if await self._fire(sched, now):
                fired += 1
        return fired

    async def _fire(self, sched: Schedule, now: int) -> bool:
        if sched.next_run_at is None:
            return False
        try:
            nxt = next_run_after(sched.cron, sched.timezone, now)
        except ValueError as exc:  # stored before a validation rule tightened
            await self._record(sched, None, f"invalid schedule: {exc}")
            return False
        won = await asyncio.to_thread(self._store.claim_schedule, sched.id, sched.next_run_at, nxt)
        if not won:
            return False
        try:
            run_id = await self._spawn(sched)
        except RunyardError as err:
            await self._record(sched, None, f"{err.code}: {err.message}")
        except Exception as exc:
            log.exception("schedule %s failed to spawn a run", sched.id)
            await self._record(sched, None, f"INTERNAL: {type(exc).__name__}")
        else:
            await self._record(sched, run_id, None)
        return True

    async def _spawn(self, sched: Schedule) -> str:
        agent = await asyncio.to_thread(
            self._store.get_agent, sched.workspace_id, agent_id=sched.agent_id
        )
        if agent is None:
            raise NotFound(f"agent {sched.agent_id!r} not found")
        agent = await self._admission.admit(agent, 0)
        body = ExecRequest.model_validate(
            {
                "input": sched.prompt,
                "harness": sched.harness,
                "timeoutSeconds": sched.timeout_seconds,
            }
        )
        run = await asyncio.to_thread(self._runs.submit, agent, body, SCHEDULED_SOURCE)
        return run.id

    async def _record(self, sched: Schedule, run_id: str | None, error: str | None) -> None:
        if error is not None:
            log.warning("schedule %s did not spawn a run: %s", sched.id, error)
            error = error[:MAX_ERROR]
        await asyncio.to_thread(
            self._store.record_schedule_fire, sched.id, run_id, error, now_millis()
        )

    async def loop(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler round failed")
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue
