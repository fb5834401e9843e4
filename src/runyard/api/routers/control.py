"""Control-plane surface: ``/v1/workspaces/{ws}/agents…`` and agent runtime keys."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from runyard.api.deps import ControlDep, ServicesDep
from runyard.api.render import agent_doc, key_doc
from runyard.domain.entities import KeyKind
from runyard.domain.requests import AgentCreate, AgentDelete, AgentPatch, HarnessUpdate, KeyCreate
from runyard.services import cursors

router = APIRouter(prefix="/v1/workspaces/{ws}", tags=["control plane"])

_AGENT_ID_RE = re.compile(r"agent_[0-9a-z]{26}")


def _agent_cursor(agent_id: str) -> str:
    return cursors.encode("a1", agent_id)


def _agent_before(cursor: str | None) -> str | None:
    return None if cursor is None else cursors.decode(cursor, "a1", _AGENT_ID_RE)


@router.get("/agents")
def list_agents(
    svc: ServicesDep,
    caller: ControlDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    found = svc.agents.list(caller.workspace.id, limit + 1, _agent_before(cursor))
    page = found[:limit]
    more = len(found) > limit
    return {
        "agents": [agent_doc(a) for a in page],
        "hasMore": more,
        "nextCursor": _agent_cursor(page[-1].id) if more else None,
    }


@router.post("/agents", status_code=201)
def create_agent(svc: ServicesDep, caller: ControlDep, body: AgentCreate) -> dict[str, Any]:
    return agent_doc(svc.agents.create(caller.workspace.id, body))


@router.get("/agents/{slug}")
def get_agent(svc: ServicesDep, caller: ControlDep, slug: str) -> dict[str, Any]:
    return agent_doc(svc.agents.get(caller.workspace.id, slug))


@router.patch("/agents/{slug}")
def patch_agent(
    svc: ServicesDep, caller: ControlDep, slug: str, body: AgentPatch
) -> dict[str, Any]:
    return agent_doc(svc.agents.patch(caller.workspace.id, slug, body))


@router.patch("/agents/{slug}/harnesses")
def set_harnesses(
    svc: ServicesDep, caller: ControlDep, slug: str, body: HarnessUpdate
) -> dict[str, Any]:
    return agent_doc(svc.agents.set_harnesses(caller.workspace.id, slug, body))


@router.delete("/agents/{slug}")
async def delete_agent(
    svc: ServicesDep, caller: ControlDep, slug: str, body: AgentDelete
) -> dict[str, Any]:
    agent = await run_in_threadpool(
        svc.agents.delete, caller.workspace.id, slug, body.confirmation_slug
    )
    return {"deleted": True, "agent": {"id": agent.id, "slug": agent.slug}}


@router.post("/agents/{slug}/keys", status_code=201)
def create_key(
    svc: ServicesDep, caller: ControlDep, slug: str, body: KeyCreate | None = None
) -> dict[str, Any]:
    agent = svc.agents.get(caller.workspace.id, slug)
    key, secret = svc.keys.issue(
        caller.workspace.id, KeyKind.AGENT, name=(body.name if body else ""), agent_id=agent.id
    )
    return {"key": key_doc(key), "secret": secret}


@router.get("/agents/{slug}/keys")
def list_keys(svc: ServicesDep, caller: ControlDep, slug: str) -> dict[str, Any]:
    agent = svc.agents.get(caller.workspace.id, slug)
    return {"keys": [key_doc(k) for k in svc.keys.list(caller.workspace.id, agent.id)]}


@router.delete("/agents/{slug}/keys/{key_id}")
def revoke_key(svc: ServicesDep, caller: ControlDep, slug: str, key_id: str) -> dict[str, Any]:
    agent = svc.agents.get(caller.workspace.id, slug)
    return {"key": key_doc(svc.keys.revoke(caller.workspace.id, key_id, agent.id))}
