"""A run's canvas and artifacts on the native runtime surface, and artifact downloads.

* ``GET /v1/agents/{agentId}/runs/{runId}/canvas``: ``{canvasId, runId,
  status, progress, blocks, edges}``; ``status`` is ``running``,
  ``completed``, ``partial`` or ``failed``.
* ``GET /v1/agents/{agentId}/runs/{runId}/artifacts``: ``{artifacts}``, each
  with a ``downloadUrl`` that expires at ``downloadExpiresAt``.
* ``GET /v1/artifacts/{artifactId}/download?expires=…&signature=…``: the
  content; the signed link is the credential, so no API key is needed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from runyard.api.deps import RuntimeAgentDep, ServicesDep
from runyard.api.render import base_url
from runyard.domain.canvas import Block
from runyard.services.canvas import ArtifactView, CanvasView
from runyard.types import iso_millis

router = APIRouter(tags=["runtime"])

RunIdPath = Annotated[str, Path(alias="runId", max_length=100)]


def block_doc(b: Block) -> dict[str, Any]:
    return {
        "id": b.id,
        "name": b.name,
        "type": b.type,
        "status": b.status,
        "content": b.content,
        "sources": b.sources,
        "parents": b.parents,
        "metadata": b.metadata,
        "startedAt": iso_millis(b.started_at),
        "completedAt": iso_millis(b.completed_at),
    }


def canvas_doc(view: CanvasView) -> dict[str, Any]:
    p = view.progress
    return {
        "canvasId": view.id,
        "runId": view.run.id,
        "status": view.status,
        "progress": {
            "tasksCompleted": p.tasks_completed,
            "tasksTotal": p.tasks_total,
            "elapsedMs": p.elapsed_ms,
        },
        "blocks": [block_doc(b) for b in view.blocks],
        "edges": [{"from": a, "to": b} for a, b in view.edges()],
    }


def artifact_doc(view: ArtifactView, base_url: str) -> dict[str, Any]:
    a = view.artifact
    return {
        "id": a.id,
        "type": a.type,
        "name": a.name,
        "mediaType": a.media_type,
        "sizeBytes": a.size_bytes,
        "sha256": a.sha256,
        "createdAt": iso_millis(a.created_at),
        "downloadUrl": base_url + view.link.path,
        "downloadExpiresAt": iso_millis(view.link.expires_at * 1000),
    }


@router.get("/v1/agents/{agentId}/runs/{runId}/canvas")
def run_canvas(svc: ServicesDep, agent: RuntimeAgentDep, run_id: RunIdPath) -> dict[str, Any]:
    run = svc.runs.get(agent.workspace_id, agent.id, run_id)
    return canvas_doc(svc.canvas.view(run))


@router.get("/v1/agents/{agentId}/runs/{runId}/artifacts")
def run_artifacts(
    request: Request, svc: ServicesDep, agent: RuntimeAgentDep, run_id: RunIdPath
) -> dict[str, Any]:
    run = svc.runs.get(agent.workspace_id, agent.id, run_id)
    url = base_url(request)
    return {"artifacts": [artifact_doc(v, url) for v in svc.canvas.artifacts(run)]}


@router.get("/v1/artifacts/{artifactId}/download", response_model=None)
async def download_artifact(
    svc: ServicesDep,
    artifact_id: Annotated[str, Path(alias="artifactId", max_length=100)],
    expires: Annotated[str, Query(max_length=20)],
    signature: Annotated[str, Query(max_length=100)],
) -> FileResponse:
    found, path = await run_in_threadpool(svc.canvas.download, artifact_id, expires, signature)
    return FileResponse(
        path,
        media_type=found.media_type,
        filename=found.name.rsplit("/", 1)[-1],
        headers={"Cache-Control": "private, max-age=0", "X-Content-Type-Options": "nosniff"},
    )
