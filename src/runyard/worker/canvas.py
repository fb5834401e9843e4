"""Keeps a running run's canvas steps current, and hands over the rest at its end.

While a run goes on, each model call that begins or ends in the run's
gateway session marks the canvas dirty; a background task writes the model
call steps, at most every ``min_interval`` seconds, fenced by the lease. At
the end, the steps not yet stored as they are (the last model calls, the
harness's tool calls) travel with the outcome, in the transaction that ends
the run. The prompt, the output and the artifacts need no steps: the canvas
is drawn from the run, its steps and its artifacts when it is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from runyard.domain import canvas
from runyard.domain.canvas import Step
from runyard.store.base import Store
from runyard.types import now_millis
from runyard.worker.model_access import ModelAccess

log = logging.getLogger("runyard.worker")


class LiveCanvas:
    def __init__(
        self, store: Store, run_id: str, lease_token: str, *, min_interval: float = 0.25
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._token = lease_token
        self._min_interval = min_interval
        self._access: ModelAccess | None = None
        self._dirty = asyncio.Event()
        self._written: dict[str, Step] = {}  # what the store holds, by step key

    def follow(self, access: ModelAccess | None) -> asyncio.Task[None] | None:
        """Start writing the model-call steps whenever the gateway sees a call begin
        or end; cancel the task to stop (None: no model, nothing to follow)."""
        self._access = access
        if access is None:
            return None
        access.on_change(self._dirty.set)
        return asyncio.create_task(self._write_while_running(access))

    async def _write_while_running(self, access: ModelAccess) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            steps = [s for s in canvas.model_steps(access.live_calls()) if self._changed(s)]
            try:
                held = await asyncio.to_thread(
                    self._store.record_steps, self._run_id, self._token, steps, now_millis()
                )
            except Exception:
                log.exception("run %s: could not update the live canvas", self._run_id)
                self._written.clear()  # unknown: the final write sends everything
                continue
            if not held:
                return
            self._written.update((s.key, s) for s in steps)
            await asyncio.sleep(self._min_interval)

    def _changed(self, step: Step) -> bool:
        return self._written.get(step.key) != step

    def final(self, tool_calls: Sequence[dict[str, Any]] | None) -> list[Step]:
        """The run's steps that the store does not hold as they are."""
        calls = self._access.calls() if self._access is not None else []
        steps = canvas.model_steps(calls) + canvas.tool_steps(tool_calls or [])
        return [s for s in steps if self._changed(s)]
