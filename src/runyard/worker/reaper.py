"""The reaper: rescues runs whose worker stopped renewing its lease.

Any number of workers may run it; each rescue is a conditional update on the
expired lease, so a run is rescued once. See ``Store.reap_expired`` for what
re-queues and what fails with ``worker_lost``.
"""

from __future__ import annotations

import asyncio
import logging

from runyard.store.base import ReapResult, Store
from runyard.types import now_millis

log = logging.getLogger("runyard.reaper")

MAX_CLAIMS = 5


def reap_once(store: Store) -> ReapResult:
    result = store.reap_expired(now_millis(), MAX_CLAIMS)
    if result.requeued or result.failed or result.cancelled:
        log.warning(
            "reaper: requeued %s, failed %s, cancelled %s",
            result.requeued,
            result.failed,
            result.cancelled,
        )
    return result


async def reaper_loop(store: Store, stop: asyncio.Event, interval: float) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(reap_once, store)
        except Exception:
            log.exception("reaper round failed")
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            continue
