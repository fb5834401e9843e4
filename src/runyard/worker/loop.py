"""The claim loop: keeps up to ``worker_slots`` runs executing at once.

It claims whenever a slot is free and there may be work: when a run is
queued (a store signal), when one of its own runs finishes (which may free
an agent's concurrency slot), and on the poll interval as the correctness
path. On shutdown it stops claiming, lets in-flight runs finish for a grace
period, then kills them so they end ``failed`` with the retryable
``worker_shutdown`` error rather than being lost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from runyard.environments.provisioner import Provisioner
from runyard.services.admission import Admission
from runyard.services.notify import RunSignals, wait_any
from runyard.services.runs import RunService
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis
from runyard.worker.executor import Executor
from runyard.worker.reaper import reaper_loop
from runyard.worker.scheduler import INTERVAL_SECONDS, Scheduler
from runyard.worker.webhooks import WebhookDispatcher

log = logging.getLogger("runyard.worker")


class Worker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        executor: Executor,
        signals: RunSignals,
        shutdown_grace: float = 10.0,
    ) -> None:
        self._store = store
        self._settings = settings
        self._executor = executor
        self._signals = signals
        self._grace = shutdown_grace
        self._inflight: set[asyncio.Task[None]] = set()
        self._provisioner = Provisioner(store, executor.substrate)
        self._scheduler = Scheduler(
            store, RunService(store, settings, signals), Admission(store, settings)
        )

    async def run(self, stop: asyncio.Event) -> None:
        helpers = [
            asyncio.create_task(reaper_loop(self._store, stop, self._settings.reaper_seconds)),
            asyncio.create_task(self._provisioner.loop(stop, self._settings.poll_seconds)),
            asyncio.create_task(self._scheduler.loop(stop, INTERVAL_SECONDS)),
            asyncio.create_task(
                WebhookDispatcher(self._store, self._settings).loop(
                    stop, self._settings.poll_seconds
                )
            ),
        ]
        try:
            await self._claim_loop(stop)
        finally:
            await self._drain()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        slots = self._settings.worker_slots
        lease_ms = int(self._settings.lease_seconds * 1000)
        with self._signals.watch_queue() as wake:
            self._wake = wake
            while not stop.is_set():
                wake.clear()
                while len(self._inflight) < slots and not stop.is_set():
                    token = secrets.token_hex(16)
                    now = now_millis()
                    try:
                        run = await asyncio.to_thread(
                            self._store.claim_run,
                            self._settings.worker_id,
                            token,
                            now + lease_ms,
                            now,
                        )
                    except Exception:
                        log.exception("claim failed; retrying after the poll interval")
                        break
                    if run is None:
                        break
                    task = asyncio.create_task(self._executor.execute(run, token))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                if stop.is_set():
                    break
                await wait_any((wake, stop), self._settings.poll_seconds)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _drain(self) -> None:
        if not self._inflight:
            return
        log.info("waiting up to %.0f s for %d running runs", self._grace, len(self._inflight))
        _, pending = await asyncio.wait(set(self._inflight), timeout=self._grace)
        if not pending:
            return
        # Out of patience: kill the processes; their runs end failed/worker_shutdown.
        self._executor.begin_shutdown()
        _, stuck = await asyncio.wait(pending, timeout=10.0)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
