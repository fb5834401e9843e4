"""Reading a run's event log: one page (``?since=``) or a live follow for SSE.

:meth:`EventFeed.follow` yields the run's events after a given ``seq``, in
order, with no gaps and no duplicates, and ends after the terminal status
event. It sleeps on the store's ``event`` signal and re-reads on the poll
interval (the correctness path); while nothing happens it yields ``None``
every ``heartbeat_seconds`` so the transport can send a keep-alive, and it
stops after ``max_seconds`` whatever the run does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from runyard.domain.entities import Run, RunEvent
from runyard.domain.states import is_terminal
from runyard.services.notify import RunSignals, wait_event
from runyard.settings import Settings
from runyard.store.base import Store

BATCH = 500


def ends_run(event: RunEvent) -> bool:
    """Whether ``event`` is the run's terminal status event (the last one it gets)."""
    return event.type == "status" and is_terminal(str(event.data.get("status")))


class EventFeed:
    def __init__(self, store: Store, settings: Settings, signals: RunSignals) -> None:
        self._store = store
        self._settings = settings
        self._signals = signals

    def page(self, run: Run, since: int, limit: int) -> list[RunEvent]:
        return self._store.list_events(run.workspace_id, run.id, since, limit)

    async def follow(
        self, run: Run, after: int, *, heartbeat_seconds: float, max_seconds: float
    ) -> AsyncIterator[RunEvent | None]:
        """Events after ``after`` until the terminal one; ``None`` is a heartbeat."""
        deadline = time.monotonic() + max_seconds
        quiet_since = time.monotonic()
        with self._signals.watch_events(run.id) as woke:
            while True:
                woke.clear()
                # Status first: if the run had ended by then, every event it will
                # ever have is committed and visible to the read that follows.
                status = await asyncio.to_thread(self._store.run_status, run.id)
                found = await asyncio.to_thread(
                    self._store.list_events, run.workspace_id, run.id, after, BATCH
                )
                for event in found:
                    yield event
                    after = event.seq
                    quiet_since = time.monotonic()
                    if ends_run(event):
                        return
                if len(found) == BATCH:
                    continue
                if status is None or is_terminal(status):
                    return  # a run older than the event log: no terminal event to wait for
                now = time.monotonic()
                if now >= deadline:
                    return
                if now - quiet_since >= heartbeat_seconds:
                    yield None
                    quiet_since = now
                wait = min(
                    self._settings.poll_seconds,
                    deadline - now,
                    max(quiet_since + heartbeat_seconds - now, 0.0),
                )
                await wait_event(woke, wait)
