"""Request dependencies: the services of this app and the caller's principal.

Keys come from ``Authorization: Bearer`` or ``X-API-KEY``. The control plane
takes workspace and personal keys for the workspace named in the path; the
runtime API takes the agent's own runtime key or a workspace key of the
agent's workspace. Another workspace's objects are always 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from runyard.domain.entities import CLIENT_SOURCES, SOURCE_HEADER, Agent, KeyKind, Workspace
from runyard.errors import BadRequest, Forbidden, NotFound, Unauthorized
from runyard.services.container import Services
from runyard.services.keys import Principal


async def services(request: Request) -> Services:
    # async: a plain def would cost a threadpool hop on every request.
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]


def api_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer sk_…'")
        return token.strip()
    return request.headers.get("x-api-key")


def principal(request: Request, svc: ServicesDep) -> Principal:
    return svc.keys.authenticate(api_key(request))


PrincipalDep = Annotated[Principal, Depends(principal)]


@dataclass(frozen=True)
class ControlCaller:
    principal: Principal
    workspace: Workspace


def control_caller(
    svc: ServicesDep, who: PrincipalDep, ws: Annotated[str, Path(max_length=100)]
) -> ControlCaller:
    if who.kind is KeyKind.AGENT:
        raise Forbidden("agent runtime keys cannot use the control-plane API")
    workspace = svc.workspaces.find(ws)
    if workspace is None or workspace.id != who.workspace_id:
        raise NotFound(f"workspace {ws!r} not found")
    return ControlCaller(principal=who, workspace=workspace)


ControlDep = Annotated[ControlCaller, Depends(control_caller)]


def runtime_agent(
    svc: ServicesDep,
    who: PrincipalDep,
    agent_id: Annotated[str, Path(alias="agentId", max_length=100)],
) -> Agent:
    if who.kind is KeyKind.USER:
        raise Forbidden(
            "personal keys cannot use the runtime API;"
            " use the agent's runtime key or a workspace key"
        )
    if who.kind is KeyKind.AGENT and who.agent_id != agent_id:
        raise NotFound(f"agent {agent_id!r} not found")
    return svc.agents.get_by_id(who.workspace_id, agent_id)


RuntimeAgentDep = Annotated[Agent, Depends(runtime_agent)]


async def run_source(request: Request) -> str:
    """The source a client names for the runs it creates (``API`` by default)."""
    raw = request.headers.get(SOURCE_HEADER)
    if raw is None:
        return "API"
    value = raw.strip().upper()
    if value not in CLIENT_SOURCES:
        raise BadRequest(
            f"{SOURCE_HEADER} must be one of {', '.join(CLIENT_SOURCES)}",
            {"field": SOURCE_HEADER, "allowed": list(CLIENT_SOURCES)},
        )
    return value


SourceDep = Annotated[str, Depends(run_source)]
