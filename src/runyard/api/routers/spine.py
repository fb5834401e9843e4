"""Spine surface: ``/v1/run``, ``/v1/run/{run_id}`` and ``/v1/canvas/{canvas_id}/…``.

A thin router over :class:`~runyard.services.spine.SpineService` (the
vocabulary, the form rules and who sees what live there). Every answer is
``{"success": true, "data": …}`` and every error on these paths
``{"success": false, "error": {"code", "message"}}`` with its HTTP status.
Keys: ``X-API-KEY`` or ``Authorization: Bearer``; workspace, personal and
(for their own agent) agent runtime keys. Fields are snake_case.

* ``POST /v1/run``: a ``multipart/form-data`` (or urlencoded) form ->
  ``202 {run_id, status: "running", canvas_id, poll_url}`` once committed.
* ``GET /v1/run/{run_id}``: the run in the documented shape of its status.
* ``GET /v1/canvas/{canvas_id}/dag``: ``{canvas_id, canvas_name, status,
  nodes, edges}``; ``GET …/tasks``: the steps as a task tree with progress;
  ``GET …/tasks/{task_id}``: one step with its content, sources and children.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from runyard.api.deps import PrincipalDep, ServicesDep
from runyard.api.errors import SurfaceRenderers, UnsupportedMediaType, native_envelope
from runyard.api.render import base_url
from runyard.artifacts.blobs import ArtifactBlobs
from runyard.domain.canvas import WORK_BLOCKS, Block, BlockType
from runyard.domain.entities import Run
from runyard.errors import BadRequest, RunyardError
from runyard.services import spine as vocab
from runyard.services.canvas import CanvasView
from runyard.services.keys import Principal
from runyard.services.spine import SpineService, Upload
from runyard.services.warp import auto_title
from runyard.types import iso_millis

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
TASK_TYPES: dict[str, str] = {
    BlockType.INPUT.value: "input-task",
    BlockType.MODEL_CALL.value: "model-call-task",
    BlockType.TOOL_CALL.value: "tool-call-task",
    BlockType.SUB_AGENT.value: "persona-task",
    BlockType.OUTPUT.value: "output-task",
    BlockType.ARTIFACT.value: "artifact-task",
}


def envelope(err: RunyardError) -> JSONResponse:
    """Spine's error body: ``{"success": false, "error": {"code", "message"}}``."""
    return JSONResponse(
        status_code=err.status,
        content={"success": False, "error": {"code": err.code, "message": err.message}},
    )


def no_query(request: Request, who: PrincipalDep) -> None:
    """None of these endpoints takes query parameters; an unknown one is a 400
    (after authentication: a request without a key is a 401 first)."""
    if request.query_params:
        name = next(iter(request.query_params))
        raise BadRequest(f"unknown query parameter {name[:80]!r}")


# Paths that take file uploads: the body limit there is RUNYARD_MAX_UPLOAD_BYTES.
UPLOAD_PATHS = frozenset({"/v1/run"})

router = APIRouter(tags=["spine"], dependencies=[Depends(no_query)])

RunIdPath = Annotated[str, Path(min_length=1, max_length=100)]
TaskIdPath = Annotated[str, Path(min_length=1, max_length=100)]


async def _service(svc: ServicesDep) -> SpineService:
    blobs = ArtifactBlobs(svc.settings.artifacts_dir)
    return SpineService(svc.store, svc.runs, blobs, svc.settings)


SpineDep = Annotated[SpineService, Depends(_service)]


def ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "data": data}


# ---- POST /v1/run ---------------------------------------------------------------


async def _read_form(request: Request, limit: int) -> FormData:
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media not in FORM_TYPES:
        raise UnsupportedMediaType(
            "send the run as multipart/form-data (curl -F 'prompt=…' -F 'files=@data.csv')"
            " or application/x-www-form-urlencoded"
        )
    try:
        return await request.form(
            max_files=vocab.MAX_FILES, max_fields=64, max_part_size=limit * 2 + 65_536
        )
    except StarletteHTTPException as exc:
        raise BadRequest(f"the form could not be read: {exc.detail}") from exc


def _split(form: FormData) -> tuple[dict[str, list[str]], list[Upload]]:
    fields: dict[str, list[str]] = {}
    uploads: list[Upload] = []
    for key, value in form.multi_items():
        if isinstance(value, str):
            fields.setdefault(key, []).append(value)
        elif key == vocab.FILE_FIELD:
            uploads.append(Upload(value.filename, value.file))
        elif key in vocab.TEXT_FIELDS:
            raise BadRequest(f"{key} must be a text field, not a file upload")
        else:
            raise BadRequest(
                f"unknown form field {key[:80]!r}; known: {', '.join(vocab.FORM_FIELDS)}"
            )
    return fields, uploads


@router.post("/v1/run", status_code=202)
async def create_run(
    request: Request, svc: ServicesDep, spine: SpineDep, who: PrincipalDep
) -> dict[str, Any]:
    form = await _read_form(request, svc.settings.max_input_bytes)
    try:
        fields, uploads = _split(form)
        run = await run_in_threadpool(spine.submit, who, fields, uploads)
    finally:
        await form.close()
    return ok(
        {
            "run_id": run.id,
            "status": "running",
            "canvas_id": run.id,
            "poll_url": f"/v1/run/{run.id}",
        }
    )


# ---- GET /v1/run/{run_id} -------------------------------------------------------


def _progress(view: CanvasView) -> dict[str, int]:
    p = view.progress
    return {
        "tasks_completed": p.tasks_completed,
        "tasks_total": p.tasks_total,
        "elapsed_ms": p.elapsed_ms,
    }


def _errors(run: Run, view: CanvasView) -> list[dict[str, str]]:
    if view.status == "failed":
        return [{"error": vocab.run_error(run)}]
    messages = vocab.block_errors(view.blocks)
    if run.error.message or not messages:
        messages.append(vocab.run_error(run))
    return [{"error": m} for m in messages]


def run_doc(svc: ServicesDep, run: Run, base: str) -> dict[str, Any]:
    """The run in the documented shape of its Spine status."""
    view = svc.canvas.view(run)
    head = {"run_id": run.id, "status": view.status}
    if view.status == "running":
        return {**head, "canvas_id": view.id, "progress": _progress(view)}
    if view.status == "failed":
        return {**head, "errors": _errors(run, view)}
    artifacts = [
        {
            "id": v.artifact.id,
            "type": v.artifact.type,
            "name": v.artifact.name,
            "download_url": base + v.link.path,
            "size_bytes": v.artifact.size_bytes,
        }
        for v in svc.canvas.artifacts(run)
    ]
    doc: dict[str, Any] = {
        **head,
        "canvas_id": view.id,
        "duration_ms": vocab.duration_ms(run),
        "result": {"final_output": run.output or "", "artifacts": artifacts},
        "metadata": {
            "template_used": vocab.template_used(run),
            "models_used": vocab.models_used(run, view.blocks),
            "credits_consumed": vocab.credits_consumed(run),
        },
    }
    if view.status == "partial":
        doc["errors"] = _errors(run, view)
    return doc


@router.get("/v1/run/{run_id}")
def get_run(
    request: Request, svc: ServicesDep, spine: SpineDep, who: PrincipalDep, run_id: RunIdPath
) -> dict[str, Any]:
    return ok(run_doc(svc, spine.find(who, run_id), base_url(request)))


# ---- the task tree --------------------------------------------------------------


def task_type(block: Block) -> str:
    return TASK_TYPES.get(block.type, "task")


def task_children(blocks: Sequence[Block]) -> dict[str, list[Block]]:
    """Model call id -> the tool and sub-agent steps that call asked for."""
    models = {b.id for b in blocks if b.type == BlockType.MODEL_CALL.value}
    children: dict[str, list[Block]] = {}
    for b in blocks:
        if b.type in WORK_BLOCKS and len(b.parents) == 1 and b.parents[0] in models:
            children.setdefault(b.parents[0], []).append(b)
    return children


def task_roots(blocks: Sequence[Block]) -> list[Block]:
    """The top of the tree: every step but the prompt and those nested under a model call."""
    nested = {c.id for kids in task_children(blocks).values() for c in kids}
    return [b for b in blocks if b.type != BlockType.INPUT.value and b.id not in nested]


# ---- the canvas -----------------------------------------------------------------


def _canvas(
    request: Request, svc: ServicesDep, spine: SpineService, who: Principal, canvas_id: str
) -> tuple[CanvasView, dict[str, str]]:
    """The canvas and the download URL of each artifact block (by block id)."""
    run = spine.find(who, canvas_id)
    base = base_url(request)
    urls = {v.artifact.id: base + v.link.path for v in svc.canvas.artifacts(run)}
    return svc.canvas.view(run), urls


def node_doc(b: Block, urls: dict[str, str]) -> dict[str, Any]:
    return {
        "id": b.id,
        "name": b.name,
        "type": b.type,
        "status": b.status,
        "content": b.content,
        "url": urls.get(b.id),
        "sources": b.sources,
        "started_at": iso_millis(b.started_at),
        "completed_at": iso_millis(b.completed_at),
    }


def task_doc(b: Block, children: dict[str, list[Block]]) -> dict[str, Any]:
    return {
        "task_id": b.id,
        "name": b.name,
        "task_type": task_type(b),
        "block_type": b.type,
        "status": b.status,
        "started_at": iso_millis(b.started_at),
        "completed_at": iso_millis(b.completed_at),
        "children": [task_doc(c, children) for c in children.get(b.id, [])],
    }


def _name(run: Run) -> str:
    return run.title or auto_title(run.input)


@router.get("/v1/canvas/{canvas_id}/dag")
def canvas_dag(
    request: Request, svc: ServicesDep, spine: SpineDep, who: PrincipalDep, canvas_id: RunIdPath
) -> dict[str, Any]:
    view, urls = _canvas(request, svc, spine, who, canvas_id)
    return ok(
        {
            "canvas_id": view.id,
            "canvas_name": _name(view.run),
            "status": view.status,
            "nodes": [node_doc(b, urls) for b in view.blocks],
            "edges": [{"source_id": a, "target_id": b} for a, b in view.edges()],
        }
    )


def _grouped(blocks: Sequence[Block]) -> dict[str, list[dict[str, Any]]]:
    children = task_children(blocks)
    done: list[dict[str, Any]] = []
    not_done: list[dict[str, Any]] = []
    for b in task_roots(blocks):
        (done if b.status == "completed" else not_done).append(task_doc(b, children))
    return {"completed": done, "not_completed": not_done}


@router.get("/v1/canvas/{canvas_id}/tasks")
def canvas_tasks(
    svc: ServicesDep, spine: SpineDep, who: PrincipalDep, canvas_id: RunIdPath
) -> dict[str, Any]:
    view = svc.canvas.view(spine.find(who, canvas_id))
    return ok(
        {
            "canvas_id": view.id,
            "status": view.status,
            "progress": _progress(view),
            **_grouped(view.blocks),
        }
    )


@router.get("/v1/canvas/{canvas_id}/tasks/{task_id}")
def canvas_task(
    *,
    request: Request,
    svc: ServicesDep,
    spine: SpineDep,
    who: PrincipalDep,
    canvas_id: RunIdPath,
    task_id: TaskIdPath,
) -> dict[str, Any]:
    view, urls = _canvas(request, svc, spine, who, canvas_id)
    block = view.block(task_id)
    children = task_children(view.blocks)
    return ok(
        {
            **task_doc(block, children),
            "content": block.content,
            "sources": block.sources,
            "url": urls.get(block.id),
            "metadata": block.metadata,
            "parent_ids": block.parents,
        }
    )


def register(app: FastAPI, renderers: SurfaceRenderers) -> None:
    """Serve this surface with Spine's envelope on its paths (and only there)."""
    app.include_router(router)
    renderers.add("/v1/run", envelope)
    # "/v1/run" is a prefix of "/v1/runs…", which is not this surface: keep it native.
    renderers.add("/v1/runs", native_envelope)
    renderers.add("/v1/canvas/", envelope)
