"""Warp ambient-agents surface: ``/agent/run``, ``/agent/runs[/{runId}[/cancel]]``.

A thin router over the run services (vocabulary in :mod:`runyard.services.warp`),
served at the root and again under ``/api/v1``. Every error on these paths is
RFC 7807 problem JSON (``application/problem+json``: ``type, title, status,
detail, instance, code``). Workspace and personal keys only.

* ``POST /agent/run`` (alias ``POST /agent/runs``) -> ``{run_id, state}``.
* ``GET /agent/runs``: filters in SQL, keyset ``cursor``, newest first by
  default -> ``{runs, page_info {has_next_page, next_cursor}}``. List items
  leave the prompt out (support-safe history); the run detail has it.
  Paging by ``updated_at`` is keyset too, but a run updated while a client
  pages moves in that order, so only ``created_at`` paging is gap-free.
* ``GET /agent/runs/{runId}``: the run with its prompt and resolved config.
* ``POST /agent/runs/{runId}/cancel``: unknown -> 404, ended -> 409.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from runyard.api.deps import PrincipalDep, ServicesDep
from runyard.api.errors import SurfaceRenderers
from runyard.api.render import base_url
from runyard.domain.policies import Strict
from runyard.domain.requests import RunSubmit
from runyard.errors import BadRequest, NotFound, RunyardError
from runyard.services import warp as vocab
from runyard.store.run_queries import ListedRun, RunQuery
from runyard.types import iso_millis, parse_iso

router = APIRouter(tags=["warp"])
PREFIXES = ("", "/api/v1")
RunIdPath = Annotated[str, Path(alias="runId", min_length=1, max_length=100)]
_LIST_PARAMS = frozenset(
    {"limit", "cursor", "state", "name", "config_name", "model_id", "creator", "source"}
    | {"created_after", "created_before", "sort_by", "sort_order"}
)


def problem(err: RunyardError) -> JSONResponse:
    """RFC 7807 problem details for one error, with runyard's stable ``code``."""
    try:
        title = HTTPStatus(err.status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": f"urn:runyard:problem:{err.code.lower().replace('_', '-')}",
        "title": title,
        "status": err.status,
        "detail": err.message,
        "instance": f"urn:uuid:{uuid.uuid4()}",
        "code": err.code,
    }
    if err.data:
        body["data"] = err.data
    return JSONResponse(body, status_code=err.status, media_type="application/problem+json")


class WarpConfig(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    model_id: str | None = Field(default=None, min_length=1, max_length=200)


class WarpRunCreate(Strict):
    prompt: str = Field(min_length=1)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    team: bool = False
    config: WarpConfig | None = None

    @field_validator("prompt")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value or not value.strip():
            raise ValueError("prompt must be non-blank text without NUL characters")
        return value


def _item(listed: ListedRun, with_prompt: bool, base_url: str) -> dict[str, Any]:
    run = listed.run
    doc: dict[str, Any] = {
        "run_id": run.id,
        "title": run.title or vocab.auto_title(run.input),
        "state": vocab.warp_state(run.status, listed.env_status),
    }
    if with_prompt:
        doc["prompt"] = run.input
    doc |= {
        "created_at": iso_millis(run.created_at),
        "updated_at": iso_millis(run.updated_at),
        "started_at": iso_millis(run.started_at),
        "source": vocab.warp_source(run.source),
        "creator": run.creator,
        "team": run.team,
        "agent_config": {"name": listed.agent_slug, "model_id": run.request.get("model")},
    }
    if run.session_id is not None:
        doc["session_id"] = run.session_id
    # Where to see what the agent did: the run's canvas (the same keys may read it).
    doc["session_link"] = f"{base_url}/v1/canvas/{run.id}/dag"
    if run.error.message and run.status in ("failed", "timed_out", "cancelled"):
        doc["status_message"] = {"message": run.error.message}
    return doc


def _submit(svc: ServicesDep, who: PrincipalDep, body: WarpRunCreate) -> dict[str, Any]:
    vocab.viewer_of(who)  # refuses agent runtime keys
    config = body.config or WarpConfig()
    agent = vocab.resolve_agent(svc.store, who.workspace_id, config.name)
    fields: dict[str, Any] = {"input": body.prompt}
    fields["title"] = body.title or vocab.auto_title(body.prompt)
    if config.model_id is not None:
        fields["model"] = config.model_id
    try:
        submit = RunSubmit.model_validate(fields)
    except ValidationError as exc:
        raise BadRequest(f"invalid run: {exc.errors()[0].get('msg', 'invalid')}") from exc
    run, _ = svc.runs.submit_async(agent, submit, who.key_id, None, team=body.team)
    return {"run_id": run.id, "state": vocab.warp_state(run.status, agent.environment.status)}


@router.post("/agent/run")
def create_run(svc: ServicesDep, who: PrincipalDep, body: WarpRunCreate) -> dict[str, Any]:
    return _submit(svc, who, body)


@router.post("/agent/runs")
def create_run_alias(svc: ServicesDep, who: PrincipalDep, body: WarpRunCreate) -> dict[str, Any]:
    return _submit(svc, who, body)


def _timestamp(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{field} must be an RFC 3339 timestamp", {"field": field}) from exc


@router.get("/agent/runs")
def list_runs(
    *,
    request: Request,
    svc: ServicesDep,
    who: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    state: Annotated[str | None, Query(max_length=40)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    config_name: Annotated[str | None, Query(max_length=100)] = None,
    model_id: Annotated[str | None, Query(max_length=200)] = None,
    creator: Annotated[str | None, Query(max_length=100)] = None,
    source: Annotated[str | None, Query(max_length=40)] = None,
    created_after: Annotated[str | None, Query(max_length=64)] = None,
    created_before: Annotated[str | None, Query(max_length=64)] = None,
    sort_by: Literal["created_at", "updated_at"] = "created_at",
    sort_order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    unknown = sorted(set(request.query_params) - _LIST_PARAMS)
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}", {"field": unknown[0]})
    if name is not None and config_name is not None and name != config_name:
        raise BadRequest("name and config_name disagree; give one", {"field": "config_name"})
    if source is not None and source not in vocab.SOURCES:
        raise BadRequest(
            f"unknown source {source!r}; known: {', '.join(vocab.SOURCES)}", {"field": "source"}
        )
    statuses, provisioning = vocab.state_filter(state) if state else (None, None)
    descending = sort_order == "desc"
    query = RunQuery(
        workspace_id=who.workspace_id,
        limit=limit + 1,
        viewer=vocab.viewer_of(who),
        statuses=statuses,
        provisioning=provisioning,
        agent_slug=name or config_name,
        model=model_id,
        creator=creator,
        sources=vocab.source_filter(source) if source else None,
        created_after=_timestamp(created_after, "created_after"),
        created_before=_timestamp(created_before, "created_before"),
        sort_by=sort_by,
        descending=descending,
        after=vocab.decode_cursor(cursor, sort_by, descending) if cursor else None,
    )
    found = svc.store.query_runs(query)
    page, more = found[:limit], len(found) > limit
    return {
        "runs": [_item(r, False, base_url(request)) for r in page],
        "page_info": {
            "has_next_page": more,
            "next_cursor": vocab.next_cursor(page, sort_by, descending) if more else None,
        },
    }


def _find(svc: ServicesDep, who: PrincipalDep, run_id: str) -> ListedRun:
    listed = svc.store.get_listed_run(who.workspace_id, run_id, vocab.viewer_of(who))
    if listed is None:
        raise NotFound(f"run {run_id!r} not found")
    return listed


@router.get("/agent/runs/{runId}")
def get_run(
    request: Request, svc: ServicesDep, who: PrincipalDep, run_id: RunIdPath
) -> dict[str, Any]:
    return _item(_find(svc, who, run_id), True, base_url(request))


@router.post("/agent/runs/{runId}/cancel")
async def cancel_run(
    request: Request, svc: ServicesDep, who: PrincipalDep, run_id: RunIdPath
) -> dict[str, Any]:
    if await request.body():
        raise BadRequest("cancel takes no request body", {"field": "body"})
    listed = await run_in_threadpool(_find, svc, who, run_id)
    result = await run_in_threadpool(svc.runs.cancel, who.workspace_id, listed.run.agent_id, run_id)
    return {
        "run_id": run_id,
        "state": vocab.warp_state(result.run.status, listed.env_status),
        "cancel_requested": result.run.status != "cancelled",
    }


def register(app: FastAPI, renderers: SurfaceRenderers) -> None:
    """Serve this surface at the root and under ``/api/v1``, with problem-JSON errors."""
    for prefix in PREFIXES:
        app.include_router(router, prefix=prefix)
        renderers.add(f"{prefix}/agent/", problem)
