"""The URAgents surface's service: agent summaries, manual runs and run "events".

A URAgents *event* is one run seen through that product's vocabulary: its id
is the run id, and the run states map to ``PENDING`` (queued, claimed),
``RUNNING``, ``COMPLETED`` (completed, partial) and ``FAILED`` (failed,
timed_out, cancelled). Nothing here creates a run except :meth:`execute`.

``POST …/execute`` takes an optional body ``{input | prompt, harness?,
timeoutSeconds?}``. The reference's own example sends no body at all (the
product runs the agent's stored task, "the same path as a scheduled run"),
so without a prompt runyard runs the prompt of the agent's latest schedule
(an active one if there is any, else the most recently updated), with that
schedule's harness and timeout; an agent with neither a prompt in the body
nor a schedule is a ``400`` that says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field, ValidationError, model_validator

from runyard.domain.entities import Agent, Run
from runyard.domain.policies import Strict
from runyard.domain.requests import RunSubmit
from runyard.domain.schedules import Schedule
from runyard.errors import BadRequest, NotFound
from runyard.services import cursors
from runyard.services.runs import RunService
from runyard.store.base import Store
from runyard.store.events_queries import RunFilter
from runyard.types import iso_millis, parse_iso

EXECUTE_MESSAGE = "Execution started. Poll events for status."
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_AGENT_PAGE = 200

TO_EVENT_STATUS: dict[str, str] = {
    "queued": "PENDING",
    "claimed": "PENDING",
    "running": "RUNNING",
    "completed": "COMPLETED",
    "partial": "COMPLETED",
    "failed": "FAILED",
    "timed_out": "FAILED",
    "cancelled": "FAILED",
}
FROM_EVENT_STATUS: dict[str, tuple[str, ...]] = {
    event: tuple(sorted(run for run, mapped in TO_EVENT_STATUS.items() if mapped == event))
    for event in ("PENDING", "RUNNING", "COMPLETED", "FAILED")
}
FAILED_RUN = frozenset(FROM_EVENT_STATUS["FAILED"])

_CURSOR_TAG = "ev1"


class ExecuteBody(Strict):
    """The optional ``/execute`` body; ``input`` and ``prompt`` are synonyms."""

    input: str | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    harness: str | None = Field(default=None, min_length=1, max_length=64)
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds", ge=1)

    @model_validator(mode="after")
    def _one_prompt(self) -> ExecuteBody:
        if self.input is not None and self.prompt is not None:
            raise ValueError("send either 'input' or 'prompt', not both")
        return self


def encode_token(seq: int) -> str:
    return cursors.encode_seq(_CURSOR_TAG, seq)


def decode_token(token: str) -> int:
    """The ``seq`` a ``nextToken`` points after; anything but our own encoding is a 400."""
    return cursors.decode_seq(token, _CURSOR_TAG, "nextToken")


def parse_status(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    statuses = FROM_EVENT_STATUS.get(value.strip().upper())
    if statuses is None:
        raise BadRequest(
            "status must be one of PENDING, RUNNING, COMPLETED, FAILED", {"field": "status"}
        )
    return statuses


def parse_time(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRequest(
            f"{field} must be an ISO 8601 timestamp with a timezone,"
            " for example 2025-01-01T09:00:00.000Z",
            {"field": field},
        ) from exc


def policy_model(agent: Agent | None) -> str | None:
    if agent is None:
        return None
    model = (agent.model_policy or {}).get("model")
    return model if isinstance(model, str) else None


def final_model(run: Run, fallback: str | None) -> str | None:
    """The last recorded model call's model, else the agent's policy model."""
    calls = (run.evidence or {}).get("modelCalls")
    if isinstance(calls, list):
        for call in reversed(calls):
            if isinstance(call, dict) and isinstance(call.get("model"), str):
                return str(call["model"])
    return fallback


def _count(evidence: dict[str, Any] | None, key: str) -> int:
    value = (evidence or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _error(run: Run) -> str | None:
    if run.status not in FAILED_RUN:
        return None
    return run.error.message or run.error.code or f"the run ended {run.status}"


def event_doc(run: Run, fallback_model: str | None) -> dict[str, Any]:
    return {
        "id": run.id,
        "agentId": run.agent_id,
        "userId": run.creator,
        "status": TO_EVENT_STATUS.get(run.status, "PENDING"),
        "startedAt": iso_millis(run.started_at),
        "completedAt": iso_millis(run.completed_at),
        "error": _error(run),
        "finalModel": final_model(run, fallback_model),
        "browserStepCount": _count(run.evidence, "browserStepCount"),
        "browserSessionSeconds": _count(run.evidence, "browserSessionSeconds"),
        "createdAt": iso_millis(run.created_at),
        "updatedAt": iso_millis(run.updated_at),
    }


def agent_summary(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "slug": agent.slug,
        "status": agent.environment.status,
        "model": policy_model(agent),
        "createdAt": iso_millis(agent.created_at),
        "updatedAt": iso_millis(agent.updated_at),
    }


def _latest(schedules: Iterable[Schedule]) -> Schedule | None:
    return max(schedules, key=lambda s: (s.active, s.updated_at, s.id), default=None)


class URAgentsService:
    """Reads and the one write of the URAgents surface, over the shared services."""

    def __init__(self, store: Store, runs: RunService) -> None:
        self._store = store
        self._runs = runs

    def agent(self, workspace_id: str, agent_id: str) -> Agent:
        found = self._store.get_agent(workspace_id, agent_id=agent_id)
        if found is None:
            raise NotFound(f"agent {agent_id!r} not found")
        return found

    def agents(self, workspace_id: str, only: str | None) -> list[Agent]:
        """Every agent of the workspace (or just ``only``), newest first."""
        if only is not None:
            return [self.agent(workspace_id, only)]
        found: list[Agent] = []
        before: str | None = None
        while True:
            page = self._store.list_agents(workspace_id, _AGENT_PAGE, before)
            found.extend(page)
            if len(page) < _AGENT_PAGE:
                return found
            before = page[-1].id

    def execute(self, agent: Agent, body: ExecuteBody | None, creator: str) -> Run:
        """Queue a run (``source`` ``API``); returns after the commit."""
        body = body or ExecuteBody()
        doc: dict[str, Any] = {"input": body.input or body.prompt}
        if doc["input"] is None:
            sched = _latest(self._store.list_schedules(agent.workspace_id, agent.id))
            if sched is None:
                raise BadRequest(
                    "this agent has no stored prompt (no schedule): send a JSON body"
                    ' {"input": "<prompt>"}',
                    {"field": "input"},
                )
            doc = {
                "input": sched.prompt,
                "harness": sched.harness,
                "timeoutSeconds": sched.timeout_seconds,
            }
        if body.harness is not None:
            doc["harness"] = body.harness
        if body.timeout_seconds is not None:
            doc["timeoutSeconds"] = body.timeout_seconds
        try:
            submit = RunSubmit.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or "input"
            msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
            raise BadRequest(f"{field}: {msg}", {"field": field}) from exc
        run, _ = self._runs.submit_async(agent, submit, creator, None)
        return run

    def events(
        self, workspace_id: str, where: RunFilter, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of events and the ``nextToken`` (None on the last page)."""
        found = self._store.filter_runs(workspace_id, where, limit + 1)
        runs = found[:limit]
        models: dict[str, str | None] = {}
        docs = []
        for run in runs:
            if run.agent_id not in models:
                agent = self._store.get_agent(workspace_id, agent_id=run.agent_id)
                models[run.agent_id] = policy_model(agent)
            docs.append(event_doc(run, models[run.agent_id]))
        token = encode_token(runs[-1].seq) if len(found) > limit else None
        return docs, token
