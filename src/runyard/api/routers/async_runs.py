"""Asynchronous runs: submit, cancel, and read or stream a run's event log.

* ``POST /v1/agents/{agentId}/runs`` queues a run and answers ``202
  {runId, status, pollUrl}`` once it is committed. With an
  ``Idempotency-Key`` header a retry returns the same run (``200``); the same
  key with a different body is ``409 CONFLICT``.
* ``POST …/runs/{runId}/cancel``: a queued run is ``cancelled`` at once and
  never starts; a claimed or running one gets a cancel request its worker acts
  on; an ended run is ``409`` with ``data.status``.
* ``GET …/runs/{runId}/events``: ``{events, nextSince}`` after ``?since=``, or
  Server-Sent Events with ``Accept: text/event-stream`` (``id``/``event``/
  ``data``), resuming after ``Last-Event-ID`` and ending after the terminal
  status event.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from runyard.api.deps import PrincipalDep, RuntimeAgentDep, ServicesDep, SourceDep
from runyard.domain.entities import Run, RunEvent
from runyard.domain.requests import RunSubmit
from runyard.errors import BadRequest
from runyard.services.run_events import EventFeed
from runyard.types import iso_millis

router = APIRouter(prefix="/v1/agents/{agentId}", tags=["runtime"])

SSE_HEARTBEAT_SECONDS = 15.0
SSE_MAX_SECONDS = 1800.0
_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_SEQ = re.compile(r"[0-9]{1,18}")
RunIdPath = Annotated[str, Path(alias="runId", max_length=100)]


def event_doc(event: RunEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": event.type,
        "data": event.data,
        "createdAt": iso_millis(event.created_at),
    }


def _accepted(run: Run) -> dict[str, Any]:
    return {
        "runId": run.id,
        "status": run.status,
        "pollUrl": f"/v1/agents/{run.agent_id}/runs/{run.id}",
    }


@router.post("/runs", status_code=202)
def submit_run(
    *,
    svc: ServicesDep,
    who: PrincipalDep,
    agent: RuntimeAgentDep,
    body: RunSubmit,
    response: Response,
    source: SourceDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    if idempotency_key is not None and not _KEY.fullmatch(idempotency_key):
        raise BadRequest(
            "Idempotency-Key must be 1-200 printable ASCII characters",
            {"field": "Idempotency-Key"},
        )
    run, created = svc.runs.submit_async(agent, body, who.key_id, idempotency_key, source=source)
    if not created:
        response.status_code = 200
    return _accepted(run)


@router.post("/runs/{runId}/cancel")
def cancel_run(svc: ServicesDep, agent: RuntimeAgentDep, run_id: RunIdPath) -> dict[str, Any]:
    result = svc.runs.cancel(agent.workspace_id, agent.id, run_id)
    return {
        "runId": result.run.id,
        "status": result.run.status,
        "cancelRequested": result.action == "requested" or result.run.status != "cancelled",
    }


def _after(since: int | None, last_event_id: str | None) -> int:
    if last_event_id is not None and last_event_id.strip():
        if not _SEQ.fullmatch(last_event_id.strip()):
            raise BadRequest("Last-Event-ID must be an event seq", {"field": "Last-Event-ID"})
        return max(int(last_event_id.strip()), since or 0)
    return since or 0


@router.get("/runs/{runId}/events", response_model=None)
async def run_events(
    *,
    request: Request,
    svc: ServicesDep,
    agent: RuntimeAgentDep,
    run_id: RunIdPath,
    since: Annotated[int | None, Query(ge=0, le=10**18)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> dict[str, Any] | StreamingResponse:
    run = await run_in_threadpool(svc.runs.get, agent.workspace_id, agent.id, run_id)
    after = _after(since, last_event_id)
    feed = EventFeed(svc.store, svc.settings, svc.signals)
    if "text/event-stream" not in request.headers.get("accept", ""):
        events = await run_in_threadpool(feed.page, run, after, limit)
        return {
            "events": [event_doc(e) for e in events],
            "nextSince": events[-1].seq if events else after,
        }
    return StreamingResponse(
        _sse(feed, run, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(feed: EventFeed, run: Run, after: int) -> AsyncIterator[str]:
    yield ": stream start\n\n"
    async for event in feed.follow(
        run, after, heartbeat_seconds=SSE_HEARTBEAT_SECONDS, max_seconds=SSE_MAX_SECONDS
    ):
        if event is None:
            yield ": heartbeat\n\n"
            continue
        data = json.dumps(event_doc(event), separators=(",", ":"))
        yield f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"
