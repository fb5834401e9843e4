"""Keeps a running run's lease, and notices when it must stop.

The executor runs one :class:`LeaseKeeper` beside each supervised process:
it renews the lease every heartbeat, and sets the run's ``cancel`` event when
the lease is lost (the reaper took the run, or the store moved on) or a
cancel was requested. It re-reads early whenever the run's event log grows,
since a cancel request appends an event.
"""

from __future__ import annotations

import asyncio
import logging

from runyard.services.notify import RunSignals, wait_event
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis

log = logging.getLogger("runyard.worker")


async def relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


class LeaseKeeper:
    """Renews a run's lease; on loss or a cancel request it sets ``cancel``.

    It checks once at once (a cancel may have been requested before the
    process started), then every heartbeat, and early whenever the run's event
    log grows (a cancel request appends an event).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        run_id: str,
        token: str,
        cancel: asyncio.Event,
        *,
        signals: RunSignals | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._run_id = run_id
        self._token = token
        self._cancel = cancel
        self._signals = signals
        self.lost = False

    async def keep(self) -> None:
        if self._signals is None:
            await self._keep(asyncio.Event())
            return
        with self._signals.watch_events(self._run_id) as woke:
            await self._keep(woke)

    async def _keep(self, woke: asyncio.Event) -> None:
        lease_ms = int(self._settings.lease_seconds * 1000)
        first = True
        while True:
            if not first:
                await wait_event(woke, self._settings.heartbeat_seconds)
            first = False
            woke.clear()
            now = now_millis()
            try:
                state = await asyncio.to_thread(
                    self._store.renew_lease, self._run_id, self._token, now + lease_ms, now
                )
            except Exception:
                log.exception("run %s: heartbeat failed; will retry", self._run_id)
                continue
            if not state.held:
                self.lost = True
                self._cancel.set()
                return
            if state.cancel_requested:
                self._cancel.set()
