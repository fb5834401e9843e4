"""Reading a run's canvas and artifacts, for every surface that shows them.

The caller's surface service finds the run (that is where tenancy and
visibility are decided); this service draws its canvas from the run (prompt,
output), its stored steps and its artifacts (blocks, edges, progress,
Spine-style status) and lists its artifacts with fresh
expiring download links. Downloads are authorized by the link alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from runyard.artifacts.blobs import ArtifactBlobs
from runyard.artifacts.links import ArtifactLinks, Link
from runyard.domain import canvas
from runyard.domain.canvas import Artifact, Block, Progress
from runyard.domain.entities import Run
from runyard.domain.states import is_terminal
from runyard.errors import NotFound
from runyard.store.base import Store
from runyard.types import now_millis


@dataclass(frozen=True)
class CanvasView:
    run: Run
    blocks: list[Block]
    status: str
    progress: Progress

    @property
    def id(self) -> str:
        """A run's canvas has the run's id."""
        return self.run.id

    def edges(self) -> list[tuple[str, str]]:
        return canvas.edges(self.blocks)

    def block(self, block_id: str) -> Block:
        for b in self.blocks:
            if b.id == block_id:
                return b
        raise NotFound(f"task {block_id!r} is not part of canvas {self.id!r}")


@dataclass(frozen=True)
class ArtifactView:
    artifact: Artifact
    link: Link


class CanvasService:
    def __init__(self, store: Store, blobs: ArtifactBlobs, links: ArtifactLinks) -> None:
        self._store = store
        self._blobs = blobs
        self._links = links

    def view(self, run: Run) -> CanvasView:
        """The run's canvas, drawn from the run, its stored steps and its artifacts."""
        ended = is_terminal(run.status)
        steps = self._store.list_steps(run.workspace_id, run.id)
        artifacts = self._store.list_artifacts(run.workspace_id, run.id) if ended else []
        ending = None
        if ended:
            at = run.completed_at or run.updated_at
            ending = canvas.Ending(status=run.status, output=run.output, completed_at=at)
        blocks = canvas.build(
            run.id, run.started_at or run.created_at, steps, ending=ending, artifacts=artifacts
        )
        return CanvasView(
            run=run,
            blocks=blocks,
            status=canvas.canvas_status(run.status, blocks),
            progress=canvas.progress(
                blocks, run.started_at, run.completed_at if ended else None, now_millis()
            ),
        )

    def artifacts(self, run: Run) -> list[ArtifactView]:
        now = int(time.time())
        return [
            ArtifactView(artifact=a, link=self._links.issue(a.id, now))
            for a in self._store.list_artifacts(run.workspace_id, run.id)
        ]

    def download(self, artifact_id: str, expires: str, signature: str) -> tuple[Artifact, Path]:
        """The artifact a signed link names and the file holding its content."""
        self._links.verify(artifact_id, expires, signature, int(time.time()))
        found = self._store.get_artifact(artifact_id)
        if found is None or not self._blobs.exists(found.sha256):
            raise NotFound("the artifact no longer exists")
        return found, self._blobs.path(found.sha256)
