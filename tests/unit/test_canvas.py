"""The canvas builder without a store: blocks, the DAG's edges, progress and status.

``runyard.domain.canvas`` is pure, and the worker rebuilds a run's canvas many
times while it runs and once more at the end; the store upserts blocks by id.
So these tests pin down what the rest of the system relies on: the edges
follow time (model calls chain, tool calls hang off the call that asked for
them and fan back in to the next call), a step's state comes from the
gateway's record (in flight, ok, failed), block ids are stable across
rebuilds of one run and distinct between runs, a running run still owes its
output block, the Spine status of every run status, and that malformed
trace entries (missing keys, ``None`` times) never crash the builder.
"""

from __future__ import annotations

from typing import Any

import pytest

from runyard.domain.canvas import (
    MAX_CONTENT,
    Artifact,
    Block,
    BlockStatus,
    BlockType,
    Ending,
    block_id,
    build,
    canvas_status,
    clip,
    edges,
    model_steps,
    progress,
    tool_steps,
)
from runyard.domain.states import RunStatus

RUN = "run_canvas_1"
T0 = 1_000_000


def call(index: int, start: int, end: int | None, status: int | str = 200, **kw: Any) -> dict:
    """A gateway call record as ``CallRecord.to_wire`` writes it."""
    return {
        "model": "gpt-test",
        "protocol": "openai",
        "status": status,
        "inputTokens": 10,
        "outputTokens": 5,
        "latencyMs": 7,
        "startedAt": start,
        "completedAt": end,
        "stream": False,
        "index": index,
        **kw,
    }


def tool(name: str, start: int, end: int | None, ok: bool = True, **kw: Any) -> dict:
    """A harness tool-call trace entry."""
    return {"name": name, "startedAt": start, "completedAt": end, "ok": ok, **kw}


def artifact(name: str, run_id: str = RUN) -> Artifact:
    return Artifact(
        id=block_id(run_id, f"artifact:{name}"),
        run_id=run_id,
        workspace_id="ws_1",
        name=name,
        type="txt",
        media_type="text/plain",
        size_bytes=3,
        sha256="a" * 64,
        created_at=T0 + 900,
    )


def by_name(blocks: list[Block]) -> dict[str, Block]:
    named = {b.name: b for b in blocks}
    assert len(named) == len(blocks), "test inputs should give every block its own name"
    return named


def ok_ending(status: str = "completed", output: str | None = "done") -> Ending:
    return Ending(status=status, output=output, completed_at=T0 + 1000)


# ---- build --------------------------------------------------------------------------


def test_prompt_only_canvas_is_one_completed_input_block() -> None:
    blocks = build(RUN, T0, [])
    assert len(blocks) == 1
    prompt = blocks[0]
    assert prompt.id == block_id(RUN, "prompt")
    assert prompt.run_id == RUN
    assert (prompt.position, prompt.name, prompt.type) == (0, "prompt", BlockType.INPUT.value)
    assert prompt.status == BlockStatus.COMPLETED.value
    assert prompt.parents == [] and prompt.content is None  # the prompt text is never stored
    assert (prompt.started_at, prompt.completed_at) == (T0, T0)
    assert edges(blocks) == []


def test_model_calls_chain_one_after_another() -> None:
    steps = model_steps([call(0, T0 + 10, T0 + 20), call(1, T0 + 30, T0 + 40)])
    blocks = build(RUN, T0, steps)
    assert [b.type for b in blocks] == ["input", "model_call", "model_call"]
    assert [b.position for b in blocks] == [0, 1, 2]
    prompt, first, second = blocks
    assert first.id == block_id(RUN, "model:0") and second.id == block_id(RUN, "model:1")
    assert first.parents == [prompt.id]
    assert second.parents == [first.id]
    assert first.status == second.status == BlockStatus.COMPLETED.value
    assert first.name == "gpt-test"
    assert first.metadata == {
        "model": "gpt-test",
        "protocol": "openai",
        "inputTokens": 10,
        "outputTokens": 5,
        "latencyMs": 7,
        "stream": False,
    }
    assert (first.started_at, first.completed_at) == (T0 + 10, T0 + 20)


def test_tools_hang_off_the_asking_call_and_fan_in_to_the_next() -> None:
    steps = model_steps([call(0, T0 + 10, T0 + 20), call(1, T0 + 60, T0 + 70)]) + tool_steps(
        [tool("read", T0 + 25, T0 + 30), tool("grep", T0 + 26, T0 + 40)]
    )
    blocks = build(RUN, T0, steps)
    named = by_name([b for b in blocks if b.type == BlockType.TOOL_CALL.value])
    asker = blocks[1]
    assert asker.id == block_id(RUN, "model:0")
    second = next(b for b in blocks if b.id == block_id(RUN, "model:1"))
    read, grep = named["read"], named["grep"]
    assert read.type == grep.type == BlockType.TOOL_CALL.value
    # fan-out: both tools depend on the call that asked for them
    assert read.parents == [asker.id] and grep.parents == [asker.id]
    # fan-in: the next call depends on both tools, not on the previous call
    assert second.parents == [read.id, grep.id]
    assert [b.position for b in blocks] == list(range(len(blocks)))
    assert [b.id for b in blocks] == [
        block_id(RUN, "prompt"),
        block_id(RUN, "model:0"),
        block_id(RUN, "tool:0"),
        block_id(RUN, "tool:1"),
        block_id(RUN, "model:1"),
    ]


def test_tools_hang_off_the_latest_call_that_started_before_them() -> None:
    steps = model_steps(
        [call(0, T0 + 10, T0 + 20), call(1, T0 + 30, T0 + 40), call(2, T0 + 80, T0 + 90)]
    ) + tool_steps([tool("t", T0 + 50, T0 + 60)])
    blocks = build(RUN, T0, steps)
    (t,) = (b for b in blocks if b.type == BlockType.TOOL_CALL.value)
    assert t.parents == [block_id(RUN, "model:1")]
    last = blocks[-1]
    assert last.id == block_id(RUN, "model:2") and last.parents == [t.id]


def test_tool_before_any_model_call_hangs_off_the_prompt() -> None:
    blocks = build(RUN, T0, tool_steps([tool("setup", T0 + 1, T0 + 2)]))
    assert blocks[1].parents == [block_id(RUN, "prompt")]


def test_in_flight_call_is_running() -> None:
    blocks = build(RUN, T0, model_steps([call(0, T0 + 10, None, status="error")]))
    assert blocks[1].status == BlockStatus.RUNNING.value
    assert blocks[1].completed_at is None
    assert not blocks[1].ended()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "completed"),
        (201, "completed"),
        (399, "completed"),
        (400, "failed"),
        (429, "failed"),
        (502, "failed"),
        ("error", "failed"),
        (None, "failed"),
    ],
)
def test_ended_call_state_follows_its_http_status(status: Any, expected: str) -> None:
    step = model_steps([call(0, T0 + 1, T0 + 2, status=status)])[0]
    assert step.status == expected


def test_failed_call_keeps_its_error_in_metadata() -> None:
    blocks = build(
        RUN, T0, model_steps([call(0, T0 + 1, T0 + 2, status=502, error="upstream down")])
    )
    assert blocks[1].status == BlockStatus.FAILED.value
    assert blocks[1].metadata["error"] == "upstream down"
    assert blocks[1].ended()


def test_failed_tool_call_is_failed_and_keeps_output_sources_and_arguments() -> None:
    steps = tool_steps(
        [
            tool(
                "fetch",
                T0 + 1,
                T0 + 2,
                ok=False,
                output="404",
                sources=["https://a.example", 7, "https://b.example"],
                arguments="x" * 5000,
            )
        ]
    )
    (step,) = steps
    assert step.status == BlockStatus.FAILED.value
    assert step.content == "404"
    assert step.sources == ["https://a.example", "https://b.example"]  # non-strings dropped
    assert step.metadata == {"arguments": "x" * 2000}
    block = build(RUN, T0, steps)[1]
    assert (block.status, block.content, block.sources) == ("failed", "404", step.sources)


def test_tool_call_defaults_and_sub_agent_type() -> None:
    steps = tool_steps([{"startedAt": T0 + 1}, tool("helper", T0 + 2, T0 + 3, type="sub_agent")])
    assert steps[0].name == "tool" and steps[0].status == BlockStatus.COMPLETED.value
    assert steps[0].type == BlockType.TOOL_CALL.value
    assert steps[1].type == BlockType.SUB_AGENT.value
    assert [s.key for s in steps] == ["tool:0", "tool:1"]


def test_output_block_parents_are_the_last_tools() -> None:
    steps = model_steps([call(0, T0 + 10, T0 + 20)]) + tool_steps(
        [tool("a", T0 + 25, T0 + 30), tool("b", T0 + 26, T0 + 31)]
    )
    blocks = build(RUN, T0, steps, ending=ok_ending(output="the answer"))
    out = blocks[-1]
    assert out.id == block_id(RUN, "output")
    assert (out.type, out.name, out.status) == ("output", "output", "completed")
    assert out.parents == [block_id(RUN, "tool:0"), block_id(RUN, "tool:1")]
    assert out.content == "the answer"
    assert out.metadata == {"runStatus": "completed"}
    assert out.position == len(blocks) - 1
    assert out.started_at == out.completed_at == T0 + 1000


def test_output_block_parent_is_the_last_call_without_tools_after_it() -> None:
    steps = model_steps([call(0, T0 + 10, T0 + 20), call(1, T0 + 40, T0 + 50)]) + tool_steps(
        [tool("a", T0 + 25, T0 + 30)]
    )
    out = build(RUN, T0, steps, ending=ok_ending())[-1]
    assert out.parents == [block_id(RUN, "model:1")]


def test_output_block_of_a_prompt_only_run_hangs_off_the_prompt() -> None:
    blocks = build(RUN, T0, [], ending=ok_ending())
    assert [b.type for b in blocks] == ["input", "output"]
    assert blocks[1].parents == [blocks[0].id]


@pytest.mark.parametrize(
    ("run_status", "block_status"),
    [
        ("completed", "completed"),
        ("partial", "completed"),
        ("failed", "failed"),
        ("timed_out", "failed"),
        ("cancelled", "failed"),
    ],
)
def test_output_block_status_follows_the_run(run_status: str, block_status: str) -> None:
    out = build(RUN, T0, [], ending=ok_ending(run_status, output=None))[-1]
    assert out.status == block_status
    assert out.metadata == {"runStatus": run_status}
    assert out.content is None


def test_running_run_has_no_output_or_artifact_blocks() -> None:
    blocks = build(RUN, T0, model_steps([call(0, T0 + 1, None)]), artifacts=[artifact("a.txt")])
    assert [b.type for b in blocks] == ["input", "model_call"]


def test_artifact_blocks_hang_off_the_last_steps() -> None:
    steps = model_steps([call(0, T0 + 10, T0 + 20)]) + tool_steps([tool("write", T0 + 25, T0 + 30)])
    arts = [artifact("report.txt"), artifact("data/table.csv")]
    blocks = build(RUN, T0, steps, ending=ok_ending(), artifacts=arts)
    assert [b.type for b in blocks] == [
        "input",
        "model_call",
        "tool_call",
        "output",
        "artifact",
        "artifact",
    ]
    for art, b in zip(arts, blocks[-2:], strict=True):
        assert b.id == art.id  # the artifact's id is its block's id
        assert b.name == art.name
        assert b.status == BlockStatus.COMPLETED.value
        assert b.parents == [block_id(RUN, "tool:0")]
        assert b.sources == [f"outputs/{art.name}"]
        assert b.metadata == {"sizeBytes": 3, "sha256": "a" * 64, "type": "txt"}
        assert b.started_at == b.completed_at == art.created_at
    assert [b.position for b in blocks] == list(range(6))


def test_ids_are_stable_across_rebuilds_and_distinct_across_runs() -> None:
    calls = [call(0, T0 + 10, T0 + 20), call(1, T0 + 30, None)]
    traces = [tool("a", T0 + 22, T0 + 25)]

    def canvas(run_id: str) -> list[Block]:
        steps = model_steps(calls) + tool_steps(traces)
        return build(run_id, T0, steps, ending=ok_ending(), artifacts=[artifact("x", run_id)])

    first, again = canvas(RUN), canvas(RUN)
    assert first == again  # pure: same inputs, same blocks (ids, parents, everything)
    other = canvas("run_canvas_2")
    assert len({b.id for b in first}) == len(first)  # unique within a run
    assert not {b.id for b in first} & {b.id for b in other}
    # a live rebuild (the call still running, no ending) updates the same block ids
    live = build(RUN, T0, model_steps(calls))
    assert {b.id for b in live} <= {b.id for b in first}
    assert block_id(RUN, "model:0") == block_id(RUN, "model:0") != block_id(RUN, "model:1")


def test_edges_are_parent_child_pairs_in_block_order() -> None:
    steps = model_steps([call(0, T0 + 10, T0 + 20), call(1, T0 + 60, T0 + 70)]) + tool_steps(
        [tool("a", T0 + 25, T0 + 30), tool("b", T0 + 26, T0 + 40)]
    )
    blocks = build(RUN, T0, steps, ending=ok_ending())
    p, m0, ta, tb, m1, out = (b.id for b in blocks)
    assert edges(blocks) == [(p, m0), (m0, ta), (m0, tb), (ta, m1), (tb, m1), (m1, out)]
    ids = {b.id for b in blocks}
    assert all(src in ids and dst in ids for src, dst in edges(blocks))


# ---- progress -----------------------------------------------------------------------


def test_running_run_owes_its_output_block() -> None:
    blocks = build(RUN, T0, model_steps([call(0, T0 + 1, T0 + 2), call(1, T0 + 3, None)]))
    got = progress(blocks, T0, None, T0 + 500)
    # two model calls plus the output block it still owes; one call has ended
    assert (got.tasks_completed, got.tasks_total) == (1, 3)
    assert got.elapsed_ms == 500


def test_ended_run_owes_nothing_more_and_elapsed_uses_the_end() -> None:
    blocks = build(RUN, T0, model_steps([call(0, T0 + 1, T0 + 2)]), ending=ok_ending())
    got = progress(blocks, T0, T0 + 1000, T0 + 99_999)
    assert (got.tasks_completed, got.tasks_total, got.elapsed_ms) == (2, 2, 1000)


def test_ended_run_without_output_block_is_not_padded() -> None:
    blocks = build(RUN, T0, model_steps([call(0, T0 + 1, T0 + 2)]))
    got = progress(blocks, T0, T0 + 10, T0 + 20)
    assert (got.tasks_completed, got.tasks_total, got.elapsed_ms) == (1, 1, 10)


def test_progress_of_a_queued_run_and_a_clock_behind_the_start() -> None:
    assert progress([], None, None, T0).elapsed_ms == 0
    assert progress([], None, None, T0).tasks_total == 1
    assert progress(build(RUN, T0, []), T0, None, T0 - 50).elapsed_ms == 0  # never negative


# ---- canvas_status ------------------------------------------------------------------


def _failed_work_block() -> list[Block]:
    return build(RUN, T0, model_steps([call(0, T0 + 1, T0 + 2, status=500)]))


def _healthy_blocks() -> list[Block]:
    return build(RUN, T0, model_steps([call(0, T0 + 1, T0 + 2)]), ending=ok_ending())


# (run status, canvas status with healthy blocks, with a failed work block)
STATUS_TABLE = [
    ("queued", "running", "running"),
    ("claimed", "running", "running"),
    ("running", "running", "running"),
    ("completed", "completed", "partial"),
    ("partial", "partial", "partial"),
    ("failed", "failed", "failed"),
    ("timed_out", "failed", "failed"),
    ("cancelled", "failed", "failed"),
]


def test_status_table_covers_every_run_status() -> None:
    assert {row[0] for row in STATUS_TABLE} == {s.value for s in RunStatus}


@pytest.mark.parametrize(("run_status", "healthy", "with_failure"), STATUS_TABLE)
def test_canvas_status(run_status: str, healthy: str, with_failure: str) -> None:
    assert canvas_status(run_status, _healthy_blocks()) == healthy
    assert canvas_status(run_status, []) == healthy
    assert canvas_status(run_status, _failed_work_block()) == with_failure


def test_completed_run_with_a_failed_tool_or_sub_agent_is_partial() -> None:
    for kind in ("tool_call", "sub_agent"):
        steps = tool_steps([tool("t", T0 + 1, T0 + 2, ok=False, type=kind)])
        assert canvas_status("completed", build(RUN, T0, steps)) == "partial"


def test_only_failed_work_blocks_make_a_completed_run_partial() -> None:
    # a failed output block (or an artifact) is not a work block
    failed_output = build(RUN, T0, [], ending=ok_ending("failed"))
    assert failed_output[-1].status == "failed"
    assert canvas_status("completed", failed_output) == "completed"


# ---- clip ---------------------------------------------------------------------------


def test_clip_keeps_short_text_and_truncates_long_text() -> None:
    assert clip(None) is None
    assert clip("") == ""
    exact = "x" * MAX_CONTENT
    assert clip(exact) == exact
    long = "y" * (MAX_CONTENT + 1)
    clipped = clip(long)
    assert clipped is not None
    assert clipped.startswith("y" * MAX_CONTENT)
    assert clipped.endswith("(truncated)")
    assert clipped[MAX_CONTENT:] == "\n… (truncated)"


def test_long_tool_and_final_outputs_are_clipped() -> None:
    long = "z" * (MAX_CONTENT * 2)
    (step,) = tool_steps([tool("big", T0 + 1, T0 + 2, output=long)])
    assert step.content == clip(long)
    out = build(RUN, T0, [], ending=ok_ending(output=long))[-1]
    assert out.content == clip(long)
    assert out.content is not None and len(out.content) < len(long)


# ---- malformed trace entries -----------------------------------------------------------


def test_malformed_model_calls_do_not_crash() -> None:
    steps = model_steps(
        [
            {},
            {"startedAt": None, "completedAt": None},
            {"completedAt": T0 + 5, "status": 200},
            {"model": None, "startedAt": T0 + 1, "completedAt": T0 + 2, "status": "200"},
        ]
    )
    assert [s.key for s in steps] == ["model:0", "model:1", "model:2", "model:3"]
    assert [s.status for s in steps] == ["running", "running", "completed", "failed"]
    assert [s.started_at for s in steps] == [0, 0, 0, T0 + 1]
    assert all(s.name == "model call" for s in steps)
    assert steps[0].metadata == {}
    blocks = build(RUN, T0, steps, ending=ok_ending())
    assert len({b.id for b in blocks}) == len(blocks) == 6
    assert progress(blocks, T0, T0 + 10, T0 + 20).tasks_total == 5


def test_malformed_tool_calls_do_not_crash() -> None:
    steps = tool_steps(
        [
            {},
            {"name": None, "startedAt": None, "completedAt": None, "ok": None},
            {"name": "x" * 1000, "sources": None, "output": 42, "arguments": {"a": 1}},
            {"name": 7, "ok": False},
        ]
    )
    assert [s.name for s in steps] == ["tool", "tool", "x" * 200, "7"]
    assert [s.status for s in steps] == ["completed", "completed", "completed", "failed"]
    assert all(s.started_at == 0 and s.completed_at is None for s in steps)
    assert steps[2].content is None and steps[2].sources == [] and steps[2].metadata == {}
    blocks = build(RUN, T0, steps, ending=ok_ending())
    assert [b.type for b in blocks] == ["input"] + ["tool_call"] * 4 + ["output"]
    assert canvas_status("completed", blocks) == "partial"


def test_model_steps_prefer_the_recorded_index_over_list_position() -> None:
    steps = model_steps([call(5, T0 + 1, T0 + 2), call(3, T0 + 3, T0 + 4)])
    assert [s.key for s in steps] == ["model:5", "model:3"]
    blocks = build(RUN, T0, steps)
    assert [b.id for b in blocks[1:]] == [block_id(RUN, "model:5"), block_id(RUN, "model:3")]


def test_untimed_tool_calls_go_after_the_timed_steps_in_reported_order() -> None:
    steps = model_steps([call(0, T0 + 10, T0 + 20)]) + tool_steps(
        [{"name": "late-a"}, {"name": "late-b"}, tool("timed", T0 + 30, T0 + 40)]
    )
    blocks = by_name(build(RUN, T0, steps))
    model = blocks["gpt-test"]
    assert model.parents == [block_id(RUN, "prompt")]  # no untimed tool slips before it
    order = [b.name for b in build(RUN, T0, steps)]
    assert order == ["prompt", "gpt-test", "timed", "late-a", "late-b"]


def test_a_harness_cannot_forge_block_types_through_its_trace() -> None:
    steps = tool_steps(
        [
            tool("a", T0 + 1, T0 + 2, type="model_call"),
            tool("b", T0 + 3, T0 + 4, type="input"),
            tool("c", T0 + 5, T0 + 6, type="sub_agent"),
        ]
    )
    assert [s.type for s in steps] == ["tool_call", "tool_call", "sub_agent"]
