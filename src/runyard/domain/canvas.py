"""The canvas: the DAG of steps a run took, built from what its harness did.

Every run has one canvas (its id is the run's id). Blocks come from four
sources: the prompt (one ``input`` block, whose content is never stored:
history is support-safe), each model call the gateway saw (``model_call``),
each tool call the harness reported (``tool_call``), the final output
(``output``) and each artifact the run wrote (``artifact``). Edges follow
time: a model call depends on the steps that ended before it started (the
previous call, or the tool calls that call asked for); a tool call depends on
the model call that asked for it; the output and the artifacts depend on the
last steps. Building the canvas is pure, so the worker can rebuild it while
the run goes on and once more at the end; block ids are derived from the run
and the step's position, so each rebuild updates the same blocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runyard.types import JSON

MAX_CONTENT = 64 * 1024


class BlockType(StrEnum):
    INPUT = "input"
    MODEL_CALL = "model_call"
    TOOL_CALL = "tool_call"
    SUB_AGENT = "sub_agent"
    OUTPUT = "output"
    ARTIFACT = "artifact"


class BlockStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


ENDED_BLOCK = frozenset({BlockStatus.COMPLETED.value, BlockStatus.FAILED.value})
WORK_BLOCKS = frozenset(
    {BlockType.MODEL_CALL.value, BlockType.TOOL_CALL.value, BlockType.SUB_AGENT.value}
)


@dataclass(frozen=True)
class Block:
    id: str
    run_id: str
    position: int
    name: str
    type: str
    status: str
    content: str | None = None
    sources: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    metadata: JSON = field(default_factory=dict)
    started_at: int | None = None
    completed_at: int | None = None

    def ended(self) -> bool:
        return self.status in ENDED_BLOCK


@dataclass(frozen=True)
class Artifact:
    """A file a run wrote under ``outputs/``; its id is also its canvas block's id."""

    id: str
    run_id: str
    workspace_id: str
    name: str
    type: str
    media_type: str
    size_bytes: int
    sha256: str
    created_at: int


@dataclass(frozen=True)
class Progress:
    tasks_completed: int
    tasks_total: int
    elapsed_ms: int


def block_id(run_id: str, key: str) -> str:
    """The stable id of the block ``key`` (``prompt``, ``model:3``, …) of a run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"runyard:canvas:{run_id}:{key}"))


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_CONTENT:
        return text
    return text[:MAX_CONTENT] + "\n… (truncated)"


@dataclass(frozen=True)
class Step:
    """One model call or tool call, as the gateway or the harness reported it."""

    key: str
    type: str
    name: str
    status: str
    started_at: int
    completed_at: int | None
    content: str | None = None
    sources: list[str] = field(default_factory=list)
    metadata: JSON = field(default_factory=dict)


def model_steps(calls: Sequence[dict[str, Any]]) -> list[Step]:
    """Steps from the gateway's call records (``CallRecord.to_wire`` plus ``index``)."""
    steps = []
    for n, call in enumerate(calls):
        index = call.get("index", n)
        status = call.get("status")
        if call.get("completedAt") is None:
            state = BlockStatus.RUNNING.value
        elif isinstance(status, int) and status < 400:
            state = BlockStatus.COMPLETED.value
        else:
            state = BlockStatus.FAILED.value
        meta: dict[str, Any] = {
            k: call[k]
            for k in ("model", "protocol", "inputTokens", "outputTokens", "latencyMs", "stream")
            if k in call
        }
        if call.get("error"):
            meta["error"] = call["error"]
        steps.append(
            Step(
                key=f"model:{index}",
                type=BlockType.MODEL_CALL.value,
                name=str(call.get("model") or "model call"),
                status=state,
                started_at=int(call.get("startedAt") or 0),
                completed_at=call.get("completedAt"),
                metadata=meta,
            )
        )
    return steps


def tool_steps(calls: Sequence[dict[str, Any]]) -> list[Step]:
    """Steps from a harness's tool-call trace (``name, startedAt, completedAt, ok, …``)."""
    steps = []
    for n, call in enumerate(calls):
        ok = call.get("ok", True) is not False
        sources = [s for s in call.get("sources") or [] if isinstance(s, str)][:50]
        meta: dict[str, Any] = {}
        if isinstance(call.get("arguments"), str):
            meta["arguments"] = call["arguments"][:2000]
        steps.append(
            Step(
                key=f"tool:{n}",
                type=(
                    BlockType.SUB_AGENT.value
                    if call.get("type") == BlockType.SUB_AGENT.value
                    else BlockType.TOOL_CALL.value
                ),
                name=str(call.get("name") or "tool")[:200],
                status=BlockStatus.COMPLETED.value if ok else BlockStatus.FAILED.value,
                started_at=int(call.get("startedAt") or call.get("completedAt") or 0),
                completed_at=call.get("completedAt"),
                content=clip(call.get("output") if isinstance(call.get("output"), str) else None),
                sources=sources,
                metadata=meta,
            )
        )
    return steps


@dataclass(frozen=True)
class Ending:
    """How the run ended, for the output block (None while it runs)."""

    status: str
    output: str | None
    completed_at: int


def build(
    run_id: str,
    started_at: int,
    steps: Sequence[Step],
    *,
    ending: Ending | None = None,
    artifacts: Sequence[Artifact] = (),
) -> list[Block]:
    """The canvas of a run: blocks in order, each with the ids of its parents."""
    prompt = Block(
        id=block_id(run_id, "prompt"),
        run_id=run_id,
        position=0,
        name="prompt",
        type=BlockType.INPUT.value,
        status=BlockStatus.COMPLETED.value,
        started_at=started_at,
        completed_at=started_at,
    )
    blocks = [prompt]
    frontier = [prompt.id]
    asker = prompt.id  # the model call (or the prompt) that tool calls hang off
    tools_since: list[str] = []
    # Stable: steps that started together keep their given order (model calls
    # first), and a step without a time (0) goes after the timed ones.
    for step in sorted(steps, key=lambda s: s.started_at or float("inf")):
        bid = block_id(run_id, step.key)
        if step.type == BlockType.MODEL_CALL.value:
            parents = tools_since or frontier
            frontier, asker, tools_since = [bid], bid, []
        else:
            parents = [asker]
            tools_since.append(bid)
        blocks.append(_block(run_id, bid, len(blocks), step, parents))
    last = tools_since or frontier
    if ending is None:
        return blocks
    failed = ending.status not in ("completed", "partial")
    output = Block(
        id=block_id(run_id, "output"),
        run_id=run_id,
        position=len(blocks),
        name="output",
        type=BlockType.OUTPUT.value,
        status=BlockStatus.FAILED.value if failed else BlockStatus.COMPLETED.value,
        content=clip(ending.output),
        parents=list(last),
        metadata={"runStatus": ending.status},
        started_at=ending.completed_at,
        completed_at=ending.completed_at,
    )
    blocks.append(output)
    for art in artifacts:
        blocks.append(
            Block(
                id=art.id,
                run_id=run_id,
                position=len(blocks),
                name=art.name,
                type=BlockType.ARTIFACT.value,
                status=BlockStatus.COMPLETED.value,
                sources=[f"outputs/{art.name}"],
                parents=list(last),
                metadata={"sizeBytes": art.size_bytes, "sha256": art.sha256, "type": art.type},
                started_at=art.created_at,
                completed_at=art.created_at,
            )
        )
    return blocks


def _block(run_id: str, bid: str, position: int, step: Step, parents: list[str]) -> Block:
    return Block(
        id=bid,
        run_id=run_id,
        position=position,
        name=step.name,
        type=step.type,
        status=step.status,
        content=step.content,
        sources=list(step.sources),
        parents=list(parents),
        metadata=dict(step.metadata),
        started_at=step.started_at,
        completed_at=step.completed_at,
    )


def edges(blocks: Sequence[Block]) -> list[tuple[str, str]]:
    """``(from, to)`` pairs of the DAG, in block order."""
    return [(parent, b.id) for b in blocks for parent in b.parents]


def progress(
    blocks: Sequence[Block], started_at: int | None, ended_at: int | None, now: int
) -> Progress:
    """Tasks are the blocks past the prompt; a running run still owes its output block."""
    tasks = [b for b in blocks if b.type != BlockType.INPUT.value]
    done = sum(1 for b in tasks if b.ended())
    total = len(tasks)
    if ended_at is None and not any(b.type == BlockType.OUTPUT.value for b in tasks):
        total += 1
    if started_at is None:
        elapsed = 0
    else:
        elapsed = max(0, (ended_at if ended_at is not None else now) - started_at)
    return Progress(tasks_completed=done, tasks_total=total, elapsed_ms=elapsed)


def canvas_status(run_status: str, blocks: Sequence[Block]) -> str:
    """``running``, ``completed``, ``partial`` or ``failed`` (the Spine vocabulary).

    ``partial``: the run ended ``partial``, or it completed while some work
    blocks failed (usable output exists, not every step succeeded).
    """
    if run_status in ("queued", "claimed", "running"):
        return "running"
    if run_status == "partial":
        return "partial"
    if run_status == "completed":
        failed = any(b.type in WORK_BLOCKS and b.status == BlockStatus.FAILED.value for b in blocks)
        return "partial" if failed else "completed"
    return "failed"
