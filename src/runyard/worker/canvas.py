"""Keeps a running run's canvas current, and builds its final canvas.

The run starts with its prompt block, written with the ``running`` status
(an earlier attempt's canvas is dropped then). While it runs, each model call that begins or
ends in the run's gateway session marks the canvas dirty; a background task
rebuilds the blocks and writes them, at most every ``min_interval`` seconds,
fenced by the lease. The final canvas (with the harness's tool calls, the
output and the artifacts) is not written here: it travels with the outcome,
in the transaction that ends the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from runyard.domain import canvas
from runyard.domain.canvas import Artifact, Block
from runyard.store.base import Store
from runyard.types import now_millis
from runyard.worker.model_access import ModelAccess

log = logging.getLogger("runyard.worker")


class LiveCanvas:
    def __init__(
        self,
        store: Store,
        run_id: str,
        lease_token: str,
        started_at: int,
        *,
        min_interval: float = 0.25,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._token = lease_token
        self.started_at = started_at
        self._access: ModelAccess | None = None
        self._min_interval = min_interval
        self._dirty = asyncio.Event()

    def _blocks(self, calls: Sequence[dict[str, Any]]) -> list[Block]:
        return canvas.build(self._run_id, self.started_at, canvas.model_steps(calls))

    def initial(self) -> list[Block]:
        """The blocks a run starts with (its prompt), written by ``start_run``."""
        return self._blocks([])

    async def follow(self, access: ModelAccess | None) -> None:
        """Write the canvas whenever the gateway saw a call begin or end; cancel to stop."""
        self._access = access
        if access is None:
            return
        access.on_change(self._dirty.set)
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                held = await asyncio.to_thread(
                    self._store.record_blocks,
                    self._run_id,
                    self._token,
                    self._blocks(access.live_calls()),
                    now_millis(),
                )
            except Exception:
                log.exception("run %s: could not update the live canvas", self._run_id)
                held = True
            if not held:
                return
            await asyncio.sleep(self._min_interval)

    def final(
        self,
        *,
        status: str,
        output: str | None,
        tool_calls: Sequence[dict[str, Any]] | None,
        artifacts: Sequence[Artifact],
    ) -> list[Block]:
        calls = self._access.calls() if self._access is not None else []
        steps = canvas.model_steps(calls) + canvas.tool_steps(tool_calls or [])
        ending = canvas.Ending(status=status, output=output, completed_at=now_millis())
        return canvas.build(
            self._run_id, self.started_at, steps, ending=ending, artifacts=artifacts
        )
