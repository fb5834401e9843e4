"""Streams a running run's stdout into its event log as ``output_chunk`` events.

Only for harnesses whose stdout is the answer (``shell``, ``command``). The
substrate hands each piece of stdout it keeps to :meth:`OutputStream.feed`
on the event loop; a pump task writes what accumulated at most every
``interval`` seconds, fenced by the lease. Text is decoded incrementally (a
UTF-8 character split across reads stays whole) and redacted before it is
written; only whole lines are sent until the end (or until ``max_pending``
characters wait), so a secret value is never split across two chunks where
the redactor could not see it whole. The final ``output`` event still
carries the whole output.
"""

from __future__ import annotations

import asyncio
import codecs
import logging

from runyard.redaction import Redactor
from runyard.store.base import Store
from runyard.types import now_millis

log = logging.getLogger("runyard.worker")


class OutputStream:
    def __init__(
        self,
        store: Store,
        run_id: str,
        lease_token: str,
        redactor: Redactor,
        *,
        interval: float = 0.25,
        max_pending: int = 16_384,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._token = lease_token
        self._redactor = redactor
        self._interval = interval
        self._max_pending = max_pending
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._dirty = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def feed(self, data: bytes) -> None:
        """Take a piece of stdout (on the event loop); the pump starts with the first."""
        self._pending += self._decoder.decode(data)
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump())

    async def finish(self) -> None:
        """Write what is left (after the process ended) and stop."""
        if self._task is None:
            return
        self._pending += self._decoder.decode(b"", final=True)
        self._closing = True
        self._dirty.set()
        try:
            await self._task
        except Exception:
            log.exception("run %s: could not stream its output", self._run_id)

    def _take(self, everything: bool) -> str:
        if everything or len(self._pending) >= self._max_pending:
            cut = len(self._pending)
        else:
            cut = self._pending.rfind("\n") + 1
        text, self._pending = self._pending[:cut], self._pending[cut:]
        return text

    async def _pump(self) -> None:
        while True:
            await self._dirty.wait()
            if not self._closing:
                await asyncio.sleep(self._interval)
            self._dirty.clear()
            final = self._closing
            text = self._take(final)
            if text:
                held = await asyncio.to_thread(
                    self._store.append_output,
                    self._run_id,
                    self._token,
                    self._redactor.text(text) or "",
                    now_millis(),
                )
                if not held:
                    return
            if final:
                return
