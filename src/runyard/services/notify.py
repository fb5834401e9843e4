"""Wake-ups for waiting requests and idle workers.

The store calls :meth:`RunSignals.publish` (from any thread) when a run is
queued or finished, or an event is appended to its log; synchronous
``/exec`` calls await a run's finish, event streams await new events, and
the worker's claim loop awaits new work. Signals only shorten waits: every
waiter also re-reads the store on a poll interval, which is the correctness
path when a notification is missed (another process, a lost connection).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RunSignals:
    """Thread-safe fan-out of ``queued`` / ``finished`` events to asyncio waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._queued: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._events: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def publish(self, event: str, run_id: str) -> None:
        with self._lock:
            if event == "finished":
                targets = list(self._finished.get(run_id, ()))
            elif event == "queued":
                targets = list(self._queued)
            elif event == "event":
                targets = list(self._events.get(run_id, ()))
            else:  # an event kind this process does not wait for
                return
        for loop, ev in targets:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop has closed; its waiter is gone
                continue

    @contextmanager
    def watch_finish(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set when ``run_id`` finishes; register before reading its status."""
        with self._watch(self._finished, run_id) as ev:
            yield ev

    @contextmanager
    def watch_events(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set when ``run_id``'s event log grows; register before reading it."""
        with self._watch(self._events, run_id) as ev:
            yield ev

    @contextmanager
    def _watch(
        self,
        table: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]],
        run_id: str,
    ) -> Iterator[asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            table.setdefault(run_id, []).append(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = table.get(run_id, [])
                if entry in waiters:
                    waiters.remove(entry)
                if not waiters:
                    table.pop(run_id, None)

    @contextmanager
    def watch_queue(self) -> Iterator[asyncio.Event]:
        """An event set whenever a run is queued (the worker clears it itself)."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._queued.append(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._queued.remove(entry)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds; True if it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def wait_any(events: tuple[asyncio.Event, ...], timeout: float) -> bool:
    """Wait until any of ``events`` is set, up to ``timeout`` seconds."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return bool(done)
