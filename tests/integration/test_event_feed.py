"""The live event feed behind SSE: heartbeats while a run is quiet, and its cap.

``EventFeed.follow`` must yield ``None`` (a keep-alive for the transport)
whenever nothing happened for ``heartbeat_seconds``, hand over events as
they are appended, end after the terminal status event, and stop at
``max_seconds`` even if the run never ends. Checked on both backends with a
real store, counting what the feed yields, never timing it.
"""

from __future__ import annotations

import asyncio
import threading

from runyard.domain.entities import RunEvent
from runyard.services.notify import RunSignals
from runyard.services.run_events import EventFeed
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis
from tests.integration import factories as f


def _feed(store: Store) -> EventFeed:
    signals = RunSignals()
    store.subscribe(signals.publish)
    return EventFeed(store, Settings(poll_seconds=0.05), signals)


async def _collect(feed: EventFeed, run: object, **kw: float) -> list[RunEvent | None]:
    got: list[RunEvent | None] = []
    async for item in feed.follow(run, 0, **kw):  # type: ignore[arg-type]
        got.append(item)
    return got


def test_quiet_run_gets_heartbeats_and_the_feed_stops_at_its_cap(store: Store) -> None:
    ws = f.workspace(store)
    run = f.run(store, f.agent(store, ws))
    got = asyncio.run(_collect(_feed(store), run, heartbeat_seconds=0.05, max_seconds=0.6))
    events = [g for g in got if g is not None]
    assert [e.data["status"] for e in events] == ["queued"]
    assert got.count(None) >= 2  # kept alive while nothing happened
    assert store.run_status(run.id) == "queued"  # it stopped by its cap, not by the run


def test_feed_follows_a_run_to_its_terminal_event(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    f.run(store, a)
    run, token = f.claim_one(store)

    def finish_later() -> None:
        store.start_run(run.id, token, now_millis(), "shell", None)
        store.finish_run(run.id, token, f.completed("done"), now_millis())

    timer = threading.Timer(0.2, finish_later)
    timer.start()
    try:
        got = asyncio.run(_collect(_feed(store), run, heartbeat_seconds=30, max_seconds=30))
    finally:
        timer.join()
    events = [g for g in got if g is not None]
    statuses = [e.data.get("status") for e in events if e.type == "status"]
    assert statuses == ["queued", "claimed", "running", "completed"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert None not in got  # no heartbeat: it never went quiet for 30 s
