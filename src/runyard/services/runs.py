"""Runs: submit (queue durably), wait with a bound, read and page history.

``submit`` returns only after the run row is committed, which is what makes
"accepted means committed" true for every surface. ``wait`` is the bounded
wait behind synchronous ``/exec``: it sleeps on the finish signal and
re-reads the store on the poll interval.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import Any

from runyard.domain.entities import Agent, Run
from runyard.domain.policies import (
    HarnessTarget,
    ModelPolicy,
    default_harness,
    enabled_harnesses,
)
from runyard.domain.requests import ExecRequest
from runyard.domain.states import RunStatus, is_terminal
from runyard.errors import BadRequest, NotFound, PayloadTooLarge
from runyard.services.agents import parse_runtime_policy
from runyard.services.notify import RunSignals, wait_event
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import new_id, now_millis


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    next_cursor: str | None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"r1:{seq}".encode()).decode().rstrip("=")


_SEQ_RE = re.compile(r"[0-9]{1,18}")


def decode_cursor(cursor: str) -> int:
    """The ``seq`` a cursor points after; anything but our own encoding is a 400.

    The number is bounded (18 digits) so that no cursor can overflow the
    store's 64-bit integer column.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, seq = raw.partition(":")
        if tag != "r1" or not _SEQ_RE.fullmatch(seq):
            raise ValueError(raw)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("invalid cursor", {"field": "cursor"}) from exc


class RunService:
    def __init__(self, store: Store, settings: Settings, signals: RunSignals) -> None:
        self._store = store
        self._settings = settings
        self._signals = signals

    def resolve_harness(self, agent: Agent, requested: str | None) -> str:
        targets = [HarnessTarget.model_validate(t) for t in agent.harness_targets]
        enabled = enabled_harnesses(targets)
        if requested is not None:
            if requested not in enabled:
                raise BadRequest(
                    f"harness {requested!r} is not enabled for this agent",
                    {"field": "harness", "enabledHarnesses": enabled},
                )
            return requested
        resolved = default_harness(targets)
        if resolved is None:
            raise BadRequest("the agent has no enabled default harness", {"field": "harness"})
        return resolved

    def submit(self, agent: Agent, body: ExecRequest, source: str = "API") -> Run:
        """Validate and durably queue a run; returns after the commit."""
        if len(body.input.encode()) > self._settings.max_input_bytes:
            raise PayloadTooLarge(
                f"input is larger than {self._settings.max_input_bytes} bytes",
                {"field": "input", "limitBytes": self._settings.max_input_bytes},
            )
        timeout = body.timeout_seconds or self._settings.default_timeout_seconds
        if timeout > self._settings.max_timeout_seconds:
            raise BadRequest(
                f"timeoutSeconds must be at most {self._settings.max_timeout_seconds}",
                {"field": "timeoutSeconds"},
            )
        harness = self.resolve_harness(agent, body.harness)
        policy = parse_runtime_policy(agent)
        now = now_millis()
        request: dict[str, Any] = {"harness": body.harness, "timeoutSeconds": timeout}
        if body.model is not None:
            if not ModelPolicy.model_validate(agent.model_policy).allows(body.model):
                raise BadRequest(
                    f"model {body.model!r} is not allowed by the agent's model policy",
                    {"field": "model"},
                )
            request["model"] = body.model
        if body.workspace is not None:
            request["workspace"] = body.workspace
        if body.cwd is not None:
            request["cwd"] = body.cwd
        run = Run(
            id=new_id("run"),
            workspace_id=agent.workspace_id,
            agent_id=agent.id,
            status=RunStatus.QUEUED.value,
            created_at=now,
            updated_at=now,
            input=body.input,
            harness_requested=body.harness,
            harness_resolved=harness,
            request=request,
            timeout_seconds=timeout,
            session_id=body.session_id,
            source=source,
        )
        self._store.insert_run(run, concurrency_limit=policy.max_concurrent_runs)
        return run

    def get(self, workspace_id: str, agent_id: str, run_id: str) -> Run:
        run = self._store.get_run(workspace_id, run_id, agent_id=agent_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        return run

    def page(self, workspace_id: str, agent_id: str, limit: int, cursor: str | None) -> RunPage:
        before = decode_cursor(cursor) if cursor else None
        found = self._store.list_runs(workspace_id, agent_id, limit + 1, before)
        more = len(found) > limit
        runs = found[:limit]
        return RunPage(runs=runs, next_cursor=encode_cursor(runs[-1].seq) if more else None)

    async def wait(self, run: Run, timeout: float) -> Run:
        """Wait up to ``timeout`` seconds for ``run`` to finish; returns its latest state."""
        deadline = time.monotonic() + timeout
        poll = self._settings.poll_seconds
        latest: Run | None = run
        with self._signals.watch_finish(run.id) as finished:
            while True:
                latest = await asyncio.to_thread(self._store.get_run, run.workspace_id, run.id)
                remaining = deadline - time.monotonic()
                if latest is None or is_terminal(latest.status) or remaining <= 0:
                    break
                await wait_event(finished, min(poll, remaining))
                finished.clear()
        return latest or run
