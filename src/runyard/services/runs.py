"""Runs: submit (queue durably), wait with a bound, read and page history.

``submit`` returns only after the run row is committed, which is what makes
"accepted means committed" true for every surface. ``wait`` is the bounded
wait behind synchronous ``/exec``: it sleeps on the finish signal and
re-reads the store on the poll interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, replace
from typing import Any

from runyard.domain.entities import Agent, Run
from runyard.domain.policies import (
    HarnessTarget,
    ModelPolicy,
    default_harness,
    enabled_harnesses,
)
from runyard.domain.requests import ExecRequest, RunSubmit
from runyard.domain.states import RunStatus, is_terminal
from runyard.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from runyard.services import cursors
from runyard.services.agents import parse_runtime_policy
from runyard.services.notify import RunSignals, wait_event
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.store.events import CancelResult
from runyard.types import new_id, now_millis


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    next_cursor: str | None


def encode_cursor(seq: int) -> str:
    return cursors.encode_seq("r1", seq)


def decode_cursor(cursor: str) -> int:
    """The ``seq`` a cursor points after; anything but our own encoding is a 400."""
    return cursors.decode_seq(cursor, "r1")


def request_hash(agent_id: str, body: RunSubmit) -> str:
    """A digest of what a submit asked for, to tell a retry from a different request."""
    doc = {"agentId": agent_id, "body": body.model_dump(mode="json", by_alias=True)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


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
        run = self._build(agent, body, source)
        self._store.insert_run(
            run, concurrency_limit=parse_runtime_policy(agent).max_concurrent_runs
        )
        return run

    def submit_async(
        self,
        agent: Agent,
        body: RunSubmit,
        creator: str | None,
        idempotency_key: str | None,
        *,
        team: bool = False,
        source: str = "API",
        extra: dict[str, Any] | None = None,
    ) -> tuple[Run, bool]:
        """Queue a run for the asynchronous API; returns ``(run, created)`` after the commit.

        With an idempotency key, a retry with the same body returns the run the
        first call created (``created`` False); a different body is a conflict.
        ``team`` makes the run visible to every key of the workspace; ``extra``
        adds a surface's own fields to the run's request (Spine's ``inputFiles``).
        """
        built = self._build(agent, body, source)
        request = {**built.request, **(extra or {})}
        run = replace(built, title=body.title, creator=creator, team=team, request=request)
        limit = parse_runtime_policy(agent).max_concurrent_runs
        if idempotency_key is None:
            self._store.insert_run(run, concurrency_limit=limit)
            return run, True
        digest = request_hash(agent.id, body)
        found = self._store.insert_run_idempotent(run, limit, idempotency_key, digest)
        if found.request_hash != digest:
            raise Conflict(
                "this Idempotency-Key was already used with a different request",
                {"runId": found.run.id, "field": "Idempotency-Key"},
            )
        return found.run, found.created

    def cancel(self, workspace_id: str, agent_id: str, run_id: str) -> CancelResult:
        """Cancel a queued run now, or ask the worker to stop an active one."""
        result = self._store.cancel_run(workspace_id, agent_id, run_id, now_millis())
        if result is None:
            raise NotFound(f"run {run_id!r} not found")
        if result.action == "unchanged" and is_terminal(result.run.status):
            raise Conflict(
                f"the run has already ended ({result.run.status}) and cannot be cancelled",
                {"runId": run_id, "status": result.run.status},
            )
        return result

    def _build(self, agent: Agent, body: ExecRequest, source: str) -> Run:
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
        return Run(
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
