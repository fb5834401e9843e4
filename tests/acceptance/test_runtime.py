"""Runtime acceptance: ``/v1/agents/{agentId}/status|exec|runs`` over real HTTP.

Reference document 000 is the specification. Its examples run as written;
then ``/exec`` success and error envelopes (``RUN_FAILED``,
``RUN_TIMED_OUT`` with the whole process tree gone), safe ``cwd`` and
``workspace`` paths including a symlink planted by an earlier run, harness
selection, and run history: newest first, cursor pages walked to the end,
the exact support-safe run object with no prompt and no stderr in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.test_api_support import (
    RuntimeAgent,
    assert_envelope,
    assert_ts,
    poll,
    runtime_agent,
)
from tests.conftest import Server

RUN_KEYS = {
    "id",
    "agentId",
    "status",
    "createdAt",
    "startedAt",
    "completedAt",
    "updatedAt",
    "harness",
    "request",
    "output",
    "error",
    "warnings",
    "tokenUsage",
    "toolUsage",
    "evidence",
    "source",
    "title",
}
TOKEN_KEYS = {
    "source",
    "inputTokens",
    "outputTokens",
    "reasoningTokens",
    "cacheReadTokens",
    "cacheWriteTokens",
    "totalTokens",
}


@pytest.fixture
def rt(server: Server) -> Iterator[RuntimeAgent]:
    """A fresh agent with its own runtime key."""
    made = runtime_agent(server)
    with made.client:
        yield made


def assert_run(run: dict[str, Any], agent_id: str) -> None:
    """The support-safe run object of the reference, exactly."""
    assert set(run) == RUN_KEYS, run
    assert run["id"].startswith("run_")
    assert run["agentId"] == agent_id
    assert run["status"] in (
        "queued",
        "claimed",
        "running",
        "completed",
        "partial",
        "failed",
        "cancelled",
        "timed_out",
    )
    for field in ("createdAt", "updatedAt"):
        assert_ts(run[field])
    for field in ("startedAt", "completedAt"):
        if run[field] is not None:
            assert_ts(run[field])
            assert run[field] >= run["createdAt"]
    assert set(run["harness"]) == {"requested", "resolved"}
    assert set(run["request"]) == {"harness", "timeoutSeconds"}
    assert set(run["error"]) == {"code", "message", "retryable"}
    assert set(run["tokenUsage"]) == TOKEN_KEYS
    assert set(run["toolUsage"]) == {"source", "toolCallCount"}
    assert set(run["evidence"]) == {"stateCandidateCount", "substrateProvider"}


def test_reference_examples_run_as_written(server: Server, rt: RuntimeAgent) -> None:
    headers = {"Authorization": f"Bearer {rt.secret}"}
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        status = poll(
            lambda: c.get(f"/v1/agents/{rt.id}/status", headers=headers).json(),
            lambda s: s.get("status") == "ready",
        )
        assert set(status) == {"daemonVersion", "ok", "status"}
        assert status["ok"] is True
        assert isinstance(status["daemonVersion"], str) and status["daemonVersion"]

        resp = c.post(
            f"/v1/agents/{rt.id}/exec",
            headers={**headers, "Content-Type": "application/json"},
            content="""{
"input": "Summarize this repository and tell me the next thing you would inspect.",
"timeoutSeconds": 45
}""",
        )
        # The agent's default harness is ``shell``: that prose is not a working script.
        body = assert_envelope(resp, 502, "RUN_FAILED")
        run_id = body["data"]["runId"]

        listing = c.get(f"/v1/agents/{rt.id}/runs?limit=20", headers=headers)
        assert listing.status_code == 200, listing.text
        page = listing.json()
        assert set(page) == {"hasMore", "nextCursor", "runs"}
        assert page["hasMore"] is False and page["nextCursor"] is None
        assert [r["id"] for r in page["runs"]] == [run_id]

        one = c.get(f"/v1/agents/{rt.id}/runs/{run_id}", headers=headers)
        assert one.status_code == 200, one.text
        assert one.json() == {"run": page["runs"][0]}
        run = one.json()["run"]
        assert_run(run, rt.id)
        assert run["status"] == "failed"
        assert run["request"] == {"harness": None, "timeoutSeconds": 45}
        assert run["harness"] == {"requested": None, "resolved": "shell"}
        assert "Summarize" not in one.text


def test_status_shape_and_readiness(rt: RuntimeAgent) -> None:
    first = rt.client.get(f"{rt.base}/status")
    assert first.status_code == 200
    assert set(first.json()) == {"daemonVersion", "ok", "status"}
    assert first.json()["ok"] is (first.json()["status"] == "ready")
    ready = poll(lambda: rt.client.get(f"{rt.base}/status").json(), lambda s: s["ok"])
    assert ready["status"] == "ready"


def test_exec_success_shape(rt: RuntimeAgent) -> None:
    resp = rt.exec(input="printf 'hello from runyard'", timeoutSeconds=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"output", "runId", "harness", "sessionId", "warnings"}
    assert body["output"] == {"text": "hello from runyard"}
    assert body["harness"] == "shell"
    assert body["sessionId"] is None
    assert body["warnings"] is None
    run = rt.run(body["runId"])
    assert_run(run, rt.id)
    assert run["status"] == "completed"
    assert run["output"] == "hello from runyard"
    assert run["error"] == {"code": None, "message": None, "retryable": None}
    assert run["request"] == {"harness": None, "timeoutSeconds": 30}
    assert run["evidence"]["substrateProvider"] == "process"
    assert run["startedAt"] is not None and run["completedAt"] is not None
    assert run["completedAt"] >= run["startedAt"]


def test_exec_with_explicit_harness_and_session(rt: RuntimeAgent) -> None:
    resp = rt.exec(input="echo ok", harness="shell", sessionId="sess-1")
    assert resp.status_code == 200, resp.text
    assert resp.json()["warnings"] == ["sessionId is ignored by the shell harness"]
    run = rt.run(resp.json()["runId"])
    assert run["harness"] == {"requested": "shell", "resolved": "shell"}
    assert run["request"]["harness"] == "shell"
    assert run["warnings"] == ["sessionId is ignored by the shell harness"]


def test_failing_script_is_502_run_failed_without_stderr(rt: RuntimeAgent) -> None:
    marker = f"stderr-{uuid.uuid4().hex}"
    resp = rt.exec(input=f"echo partial; echo {marker} >&2; exit 3")
    body = assert_envelope(resp, 502, "RUN_FAILED")
    assert body["data"]["runId"].startswith("run_")
    assert body["data"]["runStatus"] == "failed"
    assert body["data"]["runError"]["code"] == "harness_failed"
    assert body["data"]["retryable"] is False
    assert marker not in resp.text
    run_resp = rt.client.get(f"{rt.base}/runs/{body['data']['runId']}")
    assert marker not in run_resp.text
    run = run_resp.json()["run"]
    assert_run(run, rt.id)
    assert run["status"] == "failed"
    assert run["error"]["code"] == "harness_failed"
    assert run["error"]["retryable"] is False
    assert run["output"] == "partial\n"


def _survivors(pattern: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return [line for line in found.stdout.splitlines() if line.strip()]


def test_timeout_is_504_and_kills_the_whole_process_tree(rt: RuntimeAgent) -> None:
    # A unique, valid sleep duration doubles as the marker pgrep looks for.
    marker = f"1000.{uuid.uuid4().int % 10**9:09d}"
    script = f"sleep {marker} &\nbash -c 'sleep {marker}' &\necho started\nsleep {marker}\n"
    resp = rt.exec(input=script, timeoutSeconds=1)
    body = assert_envelope(resp, 504, "RUN_TIMED_OUT")
    assert body["data"]["runStatus"] == "timed_out"
    assert body["data"]["runError"]["code"] == "timeout"
    run = rt.run(body["data"]["runId"])
    assert_run(run, rt.id)
    assert run["status"] == "timed_out"
    assert run["error"]["code"] == "timeout"
    assert run["output"] == "started\n"
    assert run["request"]["timeoutSeconds"] == 1
    # SIGKILL is sent before the run is finished; the kernel may need a moment to reap.
    poll(lambda: _survivors(marker), lambda procs: procs == [], seconds=10)


@pytest.mark.parametrize("field", ["cwd", "workspace"])
@pytest.mark.parametrize(
    "value",
    [
        "..",
        "../x",
        "a/../../b",
        "/etc",
        "/",
        "~",
        "~/x",
        "a\x00b",
        "a\\b",
        "",
        "a\nb",
        "\ud800",
        "a/" + "n" * 256,
        "d/" * 600,
    ],
)
def test_unsafe_paths_are_rejected_before_running(rt: RuntimeAgent, field: str, value: str) -> None:
    resp = rt.exec(input="touch ran", **{field: value})
    body = assert_envelope(resp, 400, "BAD_REQUEST")
    assert body["data"]["errors"][0]["field"] == field
    runs = rt.client.get(f"{rt.base}/runs").json()["runs"]
    assert runs == []


def _pwd(rt: RuntimeAgent, **paths: str) -> str:
    resp = rt.exec(input="pwd", **paths)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["output"]["text"].strip())


def test_cwd_and_workspace_run_inside_the_home(server: Server, rt: RuntimeAgent) -> None:
    home = os.path.realpath(server.data_dir / "agents" / rt.id / "home")
    assert _pwd(rt) == home
    assert _pwd(rt, cwd="a/b") == f"{home}/a/b"
    assert _pwd(rt, cwd="./c//d/.") == f"{home}/c/d"
    assert _pwd(rt, workspace="proj", cwd="src") == f"{home}/proj/src"
    assert _pwd(rt, workspace="proj") == f"{home}/proj"


def test_symlink_planted_in_the_home_cannot_escape(rt: RuntimeAgent) -> None:
    planted = rt.exec(input="ln -s / escape && ln -s /tmp tmplink && mkdir -p real && echo ok")
    assert planted.status_code == 200, planted.text
    for paths in (
        {"cwd": "escape"},
        {"cwd": "escape/tmp"},
        {"workspace": "escape"},
        {"workspace": "tmplink", "cwd": "x"},
    ):
        resp = rt.exec(input='touch "$HOME/escaped-ran"; pwd', **paths)
        body = assert_envelope(resp, 502, "RUN_FAILED")
        assert body["data"]["runError"]["code"] == "invalid_path", body
        run = rt.run(body["data"]["runId"])
        assert run["error"]["code"] == "invalid_path"
        assert run["startedAt"] is None  # refused before any process started
    check = rt.exec(input="test -e escaped-ran && echo ran || echo never", cwd="real")
    assert check.status_code == 200, check.text
    assert check.json()["output"]["text"] == "never\n"


def test_harness_must_be_enabled(rt: RuntimeAgent) -> None:
    for harness in ("hermes", "no-such-harness"):
        body = assert_envelope(rt.exec(input="true", harness=harness), 400, "BAD_REQUEST")
        assert body["data"]["field"] == "harness"
        assert body["data"]["enabledHarnesses"] == ["shell"]
    assert rt.client.get(f"{rt.base}/runs").json()["runs"] == []


def test_exec_limits(server: Server, rt: RuntimeAgent) -> None:
    too_long = assert_envelope(rt.exec(input="true", timeoutSeconds=3601), 400, "BAD_REQUEST")
    assert too_long["data"]["field"] == "timeoutSeconds"
    assert_envelope(rt.exec(input="true", timeoutSeconds=0), 400, "BAD_REQUEST")
    assert_envelope(rt.exec(input=""), 400, "BAD_REQUEST")
    big = assert_envelope(rt.exec(input="#" * (1_048_576 + 1)), 413, "PAYLOAD_TOO_LARGE")
    assert big["data"]["field"] == "input"


def test_runs_newest_first_and_cursor_walk(rt: RuntimeAgent) -> None:
    made = []
    for i in range(7):
        resp = rt.exec(input=f"echo {i}")
        assert resp.status_code == 200, resp.text
        made.append(resp.json()["runId"])
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        resp = rt.client.get(f"{rt.base}/runs", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert len(page["runs"]) <= 3
        for run in page["runs"]:
            assert_run(run, rt.id)
        seen += [r["id"] for r in page["runs"]]
        assert page["hasMore"] is (page["nextCursor"] is not None)
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))  # newest first, no duplicates, no gaps
    full = rt.client.get(f"{rt.base}/runs", params={"limit": 100}).json()
    assert [r["id"] for r in full["runs"]] == seen
    default = rt.client.get(f"{rt.base}/runs").json()
    assert len(default["runs"]) == 7 and default["hasMore"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage"},
        {"cursor": "cjE6"},  # "r1:" with no position
        {"cursor": "cjE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"},  # "r1:" + 30 digits
        {"cursor": "YTE6YWdlbnRfMDFq"},  # an agents cursor is not a runs cursor
        {"cursor": "x" * 201},
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"limit": ""},
    ],
)
def test_runs_query_validation(rt: RuntimeAgent, params: dict[str, Any]) -> None:
    assert_envelope(rt.client.get(f"{rt.base}/runs", params=params), 400, "BAD_REQUEST")


def test_run_history_never_contains_the_prompt_or_stderr(rt: RuntimeAgent) -> None:
    prompt_marker = f"prompt-{uuid.uuid4().hex}"
    stderr_marker = f"stderr-{uuid.uuid4().hex}"
    script = f": {prompt_marker}\necho {stderr_marker} >&2\necho visible\n"
    resp = rt.exec(input=script)
    assert resp.status_code == 200, resp.text
    assert resp.json()["output"] == {"text": "visible\n"}
    assert prompt_marker not in resp.text and stderr_marker not in resp.text
    one = rt.client.get(f"{rt.base}/runs/{resp.json()['runId']}")
    listing = rt.client.get(f"{rt.base}/runs")
    for text in (one.text, listing.text):
        assert prompt_marker not in text
        assert stderr_marker not in text
        assert "input" not in json.loads(text).get("run", {})
    assert_run(one.json()["run"], rt.id)


def test_another_agents_run_is_404_even_for_the_workspace_key(server: Server) -> None:
    a, b = runtime_agent(server), runtime_agent(server)
    with a.client, b.client, server.client() as ws:
        run_id = a.exec(input="echo mine").json()["runId"]
        assert ws.get(f"{a.base}/runs/{run_id}").status_code == 200
        assert_envelope(ws.get(f"{b.base}/runs/{run_id}"), 404, "NOT_FOUND")
        assert_envelope(b.client.get(f"{b.base}/runs/{run_id}"), 404, "NOT_FOUND")
        assert_envelope(ws.get(f"{a.base}/runs/run_{'0' * 26}"), 404, "NOT_FOUND")
        assert run_id not in b.client.get(f"{b.base}/runs").text


def test_unusable_workdir_error_does_not_name_host_paths(server: Server, rt: RuntimeAgent) -> None:
    assert rt.exec(input="touch afile").status_code == 200
    resp = rt.exec(input="pwd", cwd="afile/sub")
    body = assert_envelope(resp, 502, "RUN_FAILED")
    assert body["data"]["runError"]["code"] == "invalid_path"
    assert str(server.data_dir) not in resp.text
    assert str(server.data_dir) not in rt.client.get(f"{rt.base}/runs").text
