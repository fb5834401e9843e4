"""URAgents surface: ``/v1/agents``, ``/v1/agents/{agentId}[/execute|/events]``, ``/v1/events``.

A thin router over :class:`~runyard.services.uragents.URAgentsService`.
Keys: a workspace key sees its workspace; an agent runtime key sees only its
own agent (another agent is a 404, as across workspaces); personal keys are
refused (403). Errors use this product's envelope ``{"error": {"code",
"message"}}``. The native runtime surface shares the ``/v1/agents/{agentId}``
prefix, so the envelope is chosen per route (:class:`URAgentsRoute`), never
per path prefix: native routes keep the native envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from runyard.api.deps import PrincipalDep, ServicesDep
from runyard.api.errors import classify
from runyard.domain.entities import Agent, KeyKind
from runyard.errors import Forbidden, NotFound, RunyardError
from runyard.services.keys import Principal
from runyard.services.uragents import (
    DEFAULT_LIMIT,
    EXECUTE_MESSAGE,
    MAX_LIMIT,
    ExecuteBody,
    URAgentsService,
    agent_summary,
    decode_token,
    parse_status,
    parse_time,
)
from runyard.store.events_queries import RunFilter


def envelope(err: RunyardError) -> JSONResponse:
    """The URAgents error body: ``{"error": {"code", "message"}}`` with the error's status."""
    return JSONResponse(
        status_code=err.status, content={"error": {"code": err.code, "message": err.message}}
    )


class URAgentsRoute(APIRoute):
    """A route whose errors (auth, validation, service) render in the URAgents envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return envelope(classify(exc, request.headers.get("content-type")))

        return handle


router = APIRouter(tags=["uragents"], route_class=URAgentsRoute)

AgentIdPath = Annotated[str, Path(alias="agentId", max_length=100)]


def caller(who: PrincipalDep) -> Principal:
    if who.kind is KeyKind.USER:
        raise Forbidden("personal keys cannot use this API; use a workspace key")
    return who


CallerDep = Annotated[Principal, Depends(caller)]


def _service(svc: ServicesDep) -> URAgentsService:
    return URAgentsService(svc.store, svc.runs)


ServiceDep = Annotated[URAgentsService, Depends(_service)]


def _agent(ura: URAgentsService, who: Principal, agent_id: str) -> Agent:
    if who.kind is KeyKind.AGENT and who.agent_id != agent_id:
        raise NotFound(f"agent {agent_id!r} not found")
    return ura.agent(who.workspace_id, agent_id)


@router.get("/v1/agents")
def list_agents(ura: ServiceDep, who: CallerDep) -> dict[str, Any]:
    only = who.agent_id if who.kind is KeyKind.AGENT else None
    return {"data": [agent_summary(a) for a in ura.agents(who.workspace_id, only)]}


@router.get("/v1/agents/{agentId}")
def get_agent(ura: ServiceDep, who: CallerDep, agent_id: AgentIdPath) -> dict[str, Any]:
    return {"data": agent_summary(_agent(ura, who, agent_id))}


@router.post("/v1/agents/{agentId}/execute", status_code=202)
async def execute(
    ura: ServiceDep,
    who: CallerDep,
    agent_id: AgentIdPath,
    body: Annotated[ExecuteBody | None, Body()] = None,
) -> dict[str, Any]:
    agent = await run_in_threadpool(_agent, ura, who, agent_id)
    run = await run_in_threadpool(ura.execute, agent, body, who.key_id)
    return {"data": {"message": EXECUTE_MESSAGE, "requestId": run.id, "agentId": agent.id}}


def _events(
    *,
    ura: URAgentsService,
    who: Principal,
    agent_id: str | None,
    status: str | None,
    started_after: str | None,
    started_before: str | None,
    limit: int,
    next_token: str | None,
) -> dict[str, Any]:
    if agent_id is not None:
        agent_id = _agent(ura, who, agent_id).id
    elif who.kind is KeyKind.AGENT:
        agent_id = who.agent_id
    where = RunFilter(
        agent_id=agent_id,
        statuses=parse_status(status),
        started_after=parse_time(started_after, "startedAfter"),
        started_before=parse_time(started_before, "startedBefore"),
        before_seq=decode_token(next_token) if next_token else None,
    )
    data, token = ura.events(who.workspace_id, where, limit)
    return {"data": data, "nextToken": token}


StatusQ = Annotated[str | None, Query(max_length=20)]
AfterQ = Annotated[str | None, Query(alias="startedAfter", max_length=64)]
BeforeQ = Annotated[str | None, Query(alias="startedBefore", max_length=64)]
LimitQ = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
TokenQ = Annotated[str | None, Query(alias="nextToken", max_length=200)]


@router.get("/v1/agents/{agentId}/events")
def agent_events(
    *,
    ura: ServiceDep,
    who: CallerDep,
    agent_id: AgentIdPath,
    status: StatusQ = None,
    started_after: AfterQ = None,
    started_before: BeforeQ = None,
    limit: LimitQ = DEFAULT_LIMIT,
    next_token: TokenQ = None,
) -> dict[str, Any]:
    return _events(
        ura=ura,
        who=who,
        agent_id=agent_id,
        status=status,
        started_after=started_after,
        started_before=started_before,
        limit=limit,
        next_token=next_token,
    )


@router.get("/v1/events")
def all_events(
    *,
    ura: ServiceDep,
    who: CallerDep,
    agent_id: Annotated[str | None, Query(alias="agentId", max_length=100)] = None,
    status: StatusQ = None,
    started_after: AfterQ = None,
    started_before: BeforeQ = None,
    limit: LimitQ = DEFAULT_LIMIT,
    next_token: TokenQ = None,
) -> dict[str, Any]:
    return _events(
        ura=ura,
        who=who,
        agent_id=agent_id,
        status=status,
        started_after=started_after,
        started_before=started_before,
        limit=limit,
        next_token=next_token,
    )
