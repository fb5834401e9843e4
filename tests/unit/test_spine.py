"""The Spine vocabulary without HTTP: statuses both ways, the form rules, prompt
assembly, models used and credits, and the partial-run error list."""

from __future__ import annotations

import subprocess

import pytest

from runyard.domain.canvas import Block, BlockStatus, BlockType
from runyard.domain.entities import Run, RunError
from runyard.domain.states import RunStatus
from runyard.errors import BadRequest
from runyard.services import spine
from runyard.services.spine import (
    SPINE_STATUS,
    STATUSES,
    block_errors,
    combine_prompt,
    credits_consumed,
    models_used,
    parse_blocks,
    parse_form,
    run_error,
    run_statuses,
    spine_status,
)


def _run(**kw: object) -> Run:
    base: dict[str, object] = {
        "id": "run_1",
        "workspace_id": "ws_1",
        "agent_id": "agent_1",
        "status": "completed",
        "created_at": 1_000,
        "updated_at": 1_000,
        "input": "x",
        "harness_requested": None,
        "harness_resolved": "shell",
        "request": {},
        "timeout_seconds": 60,
    }
    return Run(**{**base, **kw})  # type: ignore[arg-type]


def _block(kind: str, status: str = "completed", **kw: object) -> Block:
    base: dict[str, object] = {
        "id": f"b-{kind}-{status}",
        "run_id": "run_1",
        "position": 1,
        "name": kind,
        "type": kind,
        "status": status,
    }
    return Block(**{**base, **kw})  # type: ignore[arg-type]


def test_every_run_status_has_one_spine_status_and_back() -> None:
    assert set(SPINE_STATUS) == {s.value for s in RunStatus}
    for status in RunStatus:
        shown = SPINE_STATUS[status.value]
        assert shown in STATUSES
        assert spine_status(status.value) == shown  # the table agrees with the canvas rule
        assert status.value in run_statuses(shown)
    for shown in STATUSES:
        back = run_statuses(shown)
        assert back, shown
        assert {SPINE_STATUS[s] for s in back} == {shown}
    covered = [s for shown in STATUSES for s in run_statuses(shown)]
    assert sorted(covered) == sorted(s.value for s in RunStatus)  # each exactly once
    assert run_statuses("failed") == ("failed", "timed_out", "cancelled")
    with pytest.raises(BadRequest):
        run_statuses("succeeded")


def test_a_completed_run_with_a_failed_step_is_partial() -> None:
    failed_tool = _block(BlockType.TOOL_CALL.value, BlockStatus.FAILED.value)
    failed_output = _block(BlockType.OUTPUT.value, BlockStatus.FAILED.value)
    assert spine_status("completed", [failed_tool]) == "partial"
    assert spine_status("completed", [failed_output]) == "completed"  # not a work step
    assert spine_status("running", [failed_tool]) == "running"
    assert spine_status("failed", [_block("model_call")]) == "failed"


def test_blocks_take_a_json_array_or_a_comma_list() -> None:
    assert parse_blocks('["document-block", "table-block"]') == ["document-block", "table-block"]
    assert parse_blocks(" document-block, web-block ,document-block") == [
        "document-block",
        "web-block",
    ]
    assert len(spine.BLOCK_TYPES) == 17
    for bad in ("[1, 2]", '{"a": 1}', "[", "document-block,,", "", "[]", "chart-block"):
        with pytest.raises(BadRequest):
            parse_blocks(bad)


def test_the_form_rules() -> None:
    form = parse_form({"prompt": ["hello"]}, 0)
    assert (form.prompt, form.template, form.blocks, form.instructions, form.agent) == (
        "hello",
        "auto",
        None,
        None,
        None,
    )
    full = parse_form(
        {
            "prompt": ["p"],
            "template": ["report"],
            "blocks": ['["memo-block"]'],
            "agent_instructions": ["be brief"],
            "agent": ["analyst"],
            "webhook_url": ["https://example.com/hook"],
        },
        3,
    )
    assert full.template == "report" and full.blocks == ["memo-block"]
    assert full.instructions == "be brief" and full.agent == "analyst"
    bad_forms = [
        {},  # no prompt
        {"prompt": ["   "]},
        {"prompt": ["a", "b"]},  # repeated
        {"prompt": ["p"], "colour": ["red"]},  # unknown
        {"prompt": ["p"], "files": ["not-a-file"]},
        {"prompt": ["p"], "template": ["poster"]},
        {"prompt": ["p"], "blocks": ["chart-block"]},
        {"prompt": ["p"], "webhook_url": ["ftp://example.com"]},
        {"prompt": ["p\x00"]},
        {"prompt": ["p"], "agent": [""]},
    ]
    for fields in bad_forms:
        with pytest.raises(BadRequest):
            parse_form(fields, 0)
    with pytest.raises(BadRequest, match="at most"):
        parse_form({"prompt": ["p"]}, spine.MAX_FILES + 1)


def test_instructions_come_first_and_a_shell_script_still_runs() -> None:
    script = "echo from-the-script"
    combined = combine_prompt(script, "Be careful.\nCite sources.", "shell")
    assert combined.index("Be careful.") < combined.index(script)
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", combined],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert done.stdout == "from-the-script\n"
    tagged = combine_prompt("Summarize Q1.", "Write for executives.", "native")
    assert tagged.startswith("<agent_instructions>\nWrite for executives.\n</agent_instructions>")
    assert tagged.endswith("<task>\nSummarize Q1.\n</task>")
    assert combine_prompt("as is", None, "native") == "as is"


def test_models_used_in_first_use_order() -> None:
    calls = [  # gateway records arrive in completion order
        {"model": "big", "startedAt": 30, "index": 2},
        {"model": "small", "startedAt": 10, "index": 0},
        {"model": "big", "startedAt": 20, "index": 1},
        {"model": None, "startedAt": 40, "index": 3},
        "garbage",
    ]
    run = _run(evidence={"modelCalls": calls})
    extra = _block(BlockType.MODEL_CALL.value, metadata={"model": "other"})
    assert models_used(run, [extra]) == ["small", "big", "other"]
    assert models_used(_run(), []) == []
    named = _block(BlockType.MODEL_CALL.value, name="from-name")
    assert models_used(_run(evidence={"modelCalls": "nope"}), [named]) == ["from-name"]


@pytest.mark.parametrize(
    ("usage", "credits"),
    [
        (None, 0),
        ({"source": "provider_response", "totalTokens": 0}, 0),
        ({"source": "provider_response", "totalTokens": 1}, 1),
        ({"source": "provider_response", "totalTokens": 1000}, 1),
        ({"source": "provider_response", "totalTokens": 1001}, 2),
        ({"source": "provider_response", "inputTokens": 900, "outputTokens": 600}, 2),
        ({"source": "harness_result", "totalTokens": 5000}, 0),  # not metered by runyard
    ],
)
def test_credits_are_metered_kilotokens_rounded_up(
    usage: dict[str, object] | None, credits: int
) -> None:
    assert credits_consumed(_run(token_usage=usage)) == credits


def test_errors_name_the_failed_steps_and_the_run() -> None:
    blocks = [
        _block("model_call", "failed", name="gpt-x", metadata={"error": "upstream 500"}),
        _block("tool_call", "completed"),
        _block("output", "failed"),
    ]
    assert block_errors(blocks) == ["model_call 'gpt-x' failed: upstream 500"]
    assert run_error(_run(status="failed", error=RunError(message="exit 3"))) == "exit 3"
    assert run_error(_run(status="cancelled")) == "the run was cancelled"
    assert run_error(_run(status="timed_out")) == "the run timed out"
    assert "worker_lost" in run_error(_run(status="failed", error=RunError(code="worker_lost")))
