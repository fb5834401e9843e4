"""A run's files around its process: inputs placed before, artifacts collected after.

Before the run starts its uploaded inputs are copied into ``inputs/`` and
``outputs/`` is snapshotted; after the process ends, the files it created or
changed under ``outputs/`` become artifacts (see :mod:`runyard.artifacts`).
Both run in a worker thread: they touch the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runyard.artifacts.blobs import ArtifactBlobs
from runyard.artifacts.collect import Collected, Limits, Seen, collect, snapshot
from runyard.artifacts.inputs import place_inputs
from runyard.domain.entities import Run
from runyard.settings import Settings
from runyard.types import now_millis


@dataclass(frozen=True)
class Before:
    """Where a run works and what its ``outputs/`` held before it started."""

    home: Path
    cwd: str
    seen: dict[str, Seen]


class RunFiles:
    def __init__(self, settings: Settings, blobs: ArtifactBlobs) -> None:
        self._blobs = blobs
        self._limits = Limits(
            max_files=settings.artifact_max_files, max_bytes=settings.artifact_max_bytes
        )

    def prepare(self, run: Run, home: Path, cwd: str, owner: int | None) -> Before:
        """Place the run's input files and snapshot ``outputs/``."""
        inputs = run.request.get("inputFiles")
        if isinstance(inputs, list) and inputs:
            place_inputs(home, cwd, inputs, self._blobs, owner)
        return Before(home=home, cwd=cwd, seen=snapshot(home, cwd))

    def collect(self, run: Run, before: Before) -> Collected:
        return collect(
            before.home,
            before.cwd,
            before.seen,
            self._blobs,
            run_id=run.id,
            workspace_id=run.workspace_id,
            limits=self._limits,
            now=now_millis(),
        )
