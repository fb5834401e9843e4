"""The Spine surface's service: its vocabulary, its run submission and its reads.

Spine is the asynchronous "prompt in, canvas and artifacts out" product:
``POST /v1/run`` takes a multipart form, ``GET /v1/run/{run_id}`` is polled
until a terminal status. This module holds everything that surface decides
and no HTTP: which run states are which Spine status, what the form may
contain, which agent serves a run, how uploaded files become the run's
``inputFiles``, and who may read which run.

**Statuses** (:data:`SPINE_STATUS`, refined per run by
:func:`~runyard.domain.canvas.canvas_status`): ``queued``/``claimed``/
``running`` -> ``running``; ``completed`` -> ``completed`` (``partial`` when
a model or tool step failed); ``partial`` -> ``partial``; ``failed``,
``timed_out`` and ``cancelled`` -> ``failed``.

**Which agent**: the form's ``agent`` (a slug), else the workspace's
``default`` agent, else its oldest (the Warp rule). An agent runtime key
always runs on its own agent.

**Visibility**: a workspace key sees its workspace's runs; a personal key its
own runs plus team runs (the Warp rule); an agent key its own agent's runs.
Anything else is a 404.

**Credits**: ``credits_consumed`` is the run's metered tokens (input plus
output, as the providers reported them through the model gateway) in
thousands, rounded up; 0 for a run that made no metered model call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from runyard.artifacts import inputs
from runyard.artifacts.blobs import ArtifactBlobs, TooLarge
from runyard.domain import canvas
from runyard.domain.canvas import Block, BlockStatus, BlockType
from runyard.domain.entities import Agent, KeyKind, Run
from runyard.domain.naming import safe_relative_path
from runyard.domain.requests import RunSubmit
from runyard.domain.states import RunStatus
from runyard.errors import BadRequest, NotFound, PayloadTooLarge
from runyard.services import warp
from runyard.services.keys import Principal
from runyard.services.runs import RunService
from runyard.settings import Settings
from runyard.store.base import Store

SPINE_STATUS: dict[str, str] = {
    RunStatus.QUEUED.value: "running",
    RunStatus.CLAIMED.value: "running",
    RunStatus.RUNNING.value: "running",
    RunStatus.COMPLETED.value: "completed",
    RunStatus.PARTIAL.value: "partial",
    RunStatus.FAILED.value: "failed",
    RunStatus.TIMED_OUT.value: "failed",
    RunStatus.CANCELLED.value: "failed",
}
STATUSES = ("running", "completed", "partial", "failed")
TERMINAL = frozenset({"completed", "partial", "failed"})

DEFAULT_TEMPLATE = "auto"
TEMPLATES = ("auto", "deep_research", "report", "slides", "memo", "excel", "app", "landing_page")
_BLOCK_NAMES = (
    "prompt list memo document excel deep-research image presentation app table"
    " prototype landing-page text web yt web-research file"
)
BLOCK_TYPES = tuple(f"{name}-block" for name in _BLOCK_NAMES.split())
TEXT_FIELDS = ("prompt", "template", "blocks", "agent_instructions", "agent", "webhook_url")
FILE_FIELD = "files"
FORM_FIELDS = (*TEXT_FIELDS, FILE_FIELD)
MAX_FILES = 20
MAX_SHORT_FIELD = 2000


def spine_status(run_status: str, blocks: Sequence[Block] = ()) -> str:
    """The Spine status of a run in ``run_status`` whose canvas holds ``blocks``."""
    return canvas.canvas_status(run_status, blocks)


def run_statuses(status: str) -> tuple[str, ...]:
    """The run states shown as the Spine ``status`` (the table read backwards)."""
    if status not in STATUSES:
        raise BadRequest(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
    return tuple(s for s, mapped in SPINE_STATUS.items() if mapped == status)


# ---- the POST /v1/run form ------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One ``files`` part as the router received it (``file`` is read from offset 0)."""

    filename: str | None
    file: BinaryIO


@dataclass(frozen=True)
class SpineForm:
    prompt: str
    template: str
    blocks: list[str] | None
    instructions: str | None
    agent: str | None
    webhook_url: str | None


def _one(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name) or []
    if len(values) > 1:
        raise BadRequest(f"form field {name!r} was given more than once", {"field": name})
    if values and "\x00" in values[0]:
        raise BadRequest(f"{name} must not contain NUL characters", {"field": name})
    return values[0] if values else None


def _short(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    value = _one(fields, name)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_SHORT_FIELD:
        raise BadRequest(f"{name} must be 1-{MAX_SHORT_FIELD} characters", {"field": name})
    return value


def parse_blocks(raw: str) -> list[str]:
    """``blocks``: a JSON array of block types, or a comma-separated list of them."""
    text = raw.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise BadRequest("blocks is not a valid JSON array", {"field": "blocks"}) from exc
        if not isinstance(parsed, list) or not all(isinstance(b, str) for b in parsed):
            raise BadRequest("blocks must be an array of block-type strings", {"field": "blocks"})
        items = [b.strip() for b in parsed]
    else:
        items = [b.strip() for b in text.split(",")]
    if not items or any(not b for b in items):
        raise BadRequest("blocks must name at least one block type", {"field": "blocks"})
    unknown = [b for b in items if b not in BLOCK_TYPES]
    if unknown:
        raise BadRequest(
            f"unknown block type {unknown[0][:80]!r}; known: {', '.join(BLOCK_TYPES)}",
            {"field": "blocks"},
        )
    return list(dict.fromkeys(items))


def _webhook(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest("webhook_url must be an http(s) URL", {"field": "webhook_url"})
    return value


def parse_form(fields: Mapping[str, Sequence[str]], file_count: int) -> SpineForm:
    """Validate the form's text fields; unknown and repeated fields are a 400."""
    unknown = sorted(set(fields) - set(TEXT_FIELDS))
    if unknown:
        if unknown[0] == FILE_FIELD:
            raise BadRequest(
                "files must be file uploads (curl: -F files=@report.csv)", {"field": FILE_FIELD}
            )
        raise BadRequest(
            f"unknown form field {unknown[0][:80]!r}; known: {', '.join(FORM_FIELDS)}",
            {"field": unknown[0][:80]},
        )
    if file_count > MAX_FILES:
        raise BadRequest(f"at most {MAX_FILES} files per run", {"field": FILE_FIELD})
    prompt = _one(fields, "prompt")
    if prompt is None or not prompt.strip():
        raise BadRequest("prompt is required and must not be blank", {"field": "prompt"})
    template = _short(fields, "template") or DEFAULT_TEMPLATE
    if template not in TEMPLATES:
        raise BadRequest(
            f"unknown template {template[:80]!r}; known: {', '.join(TEMPLATES)}",
            {"field": "template"},
        )
    raw_blocks = _one(fields, "blocks")
    instructions = _one(fields, "agent_instructions")
    return SpineForm(
        prompt=prompt,
        template=template,
        blocks=parse_blocks(raw_blocks) if raw_blocks is not None else None,
        instructions=instructions if instructions and instructions.strip() else None,
        agent=_short(fields, "agent"),
        webhook_url=_webhook(_short(fields, "webhook_url")),
    )


def combine_prompt(prompt: str, instructions: str | None, harness: str) -> str:
    """The run's input: the agent instructions first, clearly set apart, then the prompt.

    The ``shell`` harness runs its input as a bash script, so there the
    instructions become comment lines; every other harness reads tagged
    sections.
    """
    if instructions is None:
        return prompt
    if harness == "shell":
        lines = "\n".join(f"# {line}".rstrip() for line in instructions.strip().splitlines())
        return f"# Agent instructions:\n{lines}\n\n{prompt}"
    return (
        f"<agent_instructions>\n{instructions.strip()}\n</agent_instructions>\n\n"
        f"<task>\n{prompt}\n</task>"
    )


# ---- reading a finished run -----------------------------------------------------


def models_used(run: Run, blocks: Sequence[Block]) -> list[str]:
    """Distinct models the run called, in first-use order (gateway records, then blocks)."""
    calls = (run.evidence or {}).get("modelCalls")
    records = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    records.sort(key=lambda c: (_int(c.get("startedAt")), _int(c.get("index"))))
    found = [c["model"] for c in records if isinstance(c.get("model"), str)]
    for b in blocks:
        if b.type == BlockType.MODEL_CALL.value:
            model = b.metadata.get("model")
            found.append(model if isinstance(model, str) else b.name)
    return list(dict.fromkeys(m for m in found if m))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def credits_consumed(run: Run) -> int:
    """Metered tokens in thousands, rounded up; 0 without provider-reported usage."""
    usage = run.token_usage or {}
    if usage.get("source") != "provider_response":
        return 0
    total = _int(usage.get("totalTokens")) or (
        _int(usage.get("inputTokens")) + _int(usage.get("outputTokens"))
    )
    return math.ceil(total / 1000)


def run_error(run: Run) -> str:
    if run.error.message:
        return run.error.message
    if run.status == RunStatus.CANCELLED.value:
        return "the run was cancelled"
    if run.status == RunStatus.TIMED_OUT.value:
        return "the run timed out"
    return f"the run ended {run.status}" + (f" ({run.error.code})" if run.error.code else "")


def block_errors(blocks: Sequence[Block]) -> list[str]:
    """One message per failed model or tool step."""
    messages = []
    for b in blocks:
        if b.type in canvas.WORK_BLOCKS and b.status == BlockStatus.FAILED.value:
            detail = b.metadata.get("error")
            suffix = f": {detail}" if isinstance(detail, str) and detail else ""
            messages.append(f"{b.type} {b.name!r} failed{suffix}")
    return messages


def duration_ms(run: Run) -> int:
    start = run.started_at if run.started_at is not None else run.created_at
    end = run.completed_at if run.completed_at is not None else start
    return max(0, end - start)


# ---- the service ----------------------------------------------------------------


class SpineService:
    """Submits Spine runs and finds them for a caller."""

    def __init__(
        self, store: Store, runs: RunService, blobs: ArtifactBlobs, settings: Settings
    ) -> None:
        self._store = store
        self._runs = runs
        self._blobs = blobs
        self._settings = settings

    def agent_for(self, who: Principal, slug: str | None) -> Agent:
        """The agent that serves a run: the caller's own (runtime key), else the Warp rule."""
        if who.kind is KeyKind.AGENT:
            own = self._store.get_agent(who.workspace_id, agent_id=who.agent_id)
            if own is None or (slug is not None and own.slug != slug):
                raise NotFound(f"agent {slug or who.agent_id!r} not found", {"field": "agent"})
            return own
        return warp.resolve_agent(self._store, who.workspace_id, slug)

    def store_files(self, uploads: Sequence[Upload]) -> list[dict[str, Any]]:
        """Keep each upload in the blob store; returns the run's ``inputFiles``."""
        limit = self._settings.max_upload_bytes
        names: set[str] = set()
        stored = []
        for upload in uploads:
            if not upload.filename:
                raise BadRequest("every file needs a file name", {"field": FILE_FIELD})
            try:
                name = safe_relative_path(upload.filename, "file name")
            except ValueError as exc:
                raise BadRequest(
                    f"{exc} ({upload.filename[:80]!r})", {"field": FILE_FIELD}
                ) from exc
            if not inputs.safe_name(name):  # the rule the worker places inputs by
                raise BadRequest(
                    f"file name {name[:80]!r} must be at most 500 characters and 8 levels deep",
                    {"field": FILE_FIELD},
                )
            if name in names:
                raise BadRequest(f"file name {name[:80]!r} is used twice", {"field": FILE_FIELD})
            names.add(name)
            upload.file.seek(0)
            try:
                sha, size = self._blobs.put_fd(upload.file.fileno(), limit)
            except TooLarge as exc:
                raise PayloadTooLarge(
                    f"file {name[:80]!r} is larger than {limit} bytes",
                    {"field": FILE_FIELD, "limitBytes": limit},
                ) from exc
            stored.append({"name": name, "sha256": sha, "sizeBytes": size})
        return stored

    def submit(
        self, who: Principal, fields: Mapping[str, Sequence[str]], uploads: Sequence[Upload]
    ) -> Run:
        """Validate the form, keep the files, then queue the run; returns after the commit."""
        form = parse_form(fields, len(uploads))
        agent = self.agent_for(who, form.agent)
        harness = self._runs.resolve_harness(agent, None)
        prompt = combine_prompt(form.prompt, form.instructions, harness)
        limit = self._settings.max_input_bytes
        if len(prompt.encode()) > limit:
            raise PayloadTooLarge(
                f"prompt (with agent_instructions) is larger than {limit} bytes",
                {"field": "prompt", "limitBytes": limit},
            )
        spine: dict[str, Any] = {"template": form.template}
        if form.blocks is not None:
            spine["blocks"] = form.blocks
        if form.webhook_url is not None:
            spine["webhookUrl"] = form.webhook_url
        extra: dict[str, Any] = {"spine": spine}
        files = self.store_files(uploads)  # durable before the run is
        if files:
            extra["inputFiles"] = files
        body = RunSubmit(input=prompt, title=warp.auto_title(form.prompt))
        run, _ = self._runs.submit_async(agent, body, who.key_id, None, extra=extra)
        return run

    def find(self, who: Principal, run_id: str) -> Run:
        """A run (canvas) this caller may see; anything else is a 404."""
        viewer = who.key_id if who.kind is KeyKind.USER else None
        listed = self._store.get_listed_run(who.workspace_id, run_id, viewer)
        if listed is None or (who.kind is KeyKind.AGENT and listed.run.agent_id != who.agent_id):
            raise NotFound(f"run {run_id!r} not found")
        return listed.run


def template_used(run: Run) -> str:
    spine = run.request.get("spine")
    template = spine.get("template") if isinstance(spine, dict) else None
    return template if isinstance(template, str) else DEFAULT_TEMPLATE
