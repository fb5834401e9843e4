"""The Spine surface over HTTP, against the session's ``runyard up``.

Each test works in a workspace of its own whose ``default`` agent runs the
``shell`` harness (the prompt is a bash script). Covered: the document's
polling loop as written (``POST /v1/run`` as a multipart form with an
``X-API-KEY`` header, then ``GET /v1/run/{run_id}`` with a backoff until a
terminal status) on a run that reads its uploaded file from ``inputs/`` and
writes ``outputs/Q1_Report.md``; the completed shape, the artifact fetched
through its ``download_url`` with no key (exact bytes, sha256), metadata,
the canvas DAG, the task tree and one task; a failing script; key kinds and
visibility; client errors (400, 401, 404, 413, 415) in Spine's envelope.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from runyard.services.spine import TERMINAL
from tests.acceptance.test_api_support import admin, bare_client, unique
from tests.conftest import Server

RUNNING_KEYS = {"run_id", "status", "canvas_id", "progress"}
COMPLETED_KEYS = {"run_id", "status", "canvas_id", "duration_ms", "result", "metadata"}
SALES = b"region,total\nnorth,10\nsouth,20\n"
REPORT_SCRIPT = """\
set -e
mkdir -p outputs
{ printf '# Q1 Report\\n\\n'; cat inputs/sales.csv; } > outputs/Q1_Report.md
echo "rows: $(grep -c . inputs/sales.csv)"
"""
REPORT = b"# Q1 Report\n\n" + SALES


@dataclass
class Ws:
    slug: str
    key: str
    server: Server

    def spine(self, key: str | None = None) -> httpx.Client:
        """A client as the document's curl: the key in ``X-API-KEY``."""
        return bare_client(self.server, {"X-API-KEY": key or self.key})


@pytest.fixture
def ws(server: Server) -> Iterator[Ws]:
    slug = unique("spine")
    key = admin(server, "create-workspace", slug)["workspaceKey"]
    with server.client(key) as c:
        resp = c.post(
            f"/v1/workspaces/{slug}/agents",
            json={"name": "Default", "slug": "default", "runtimePolicy": {"maxConcurrentRuns": 4}},
        )
        assert resp.status_code == 201, resp.text
    yield Ws(slug, key, server)


def submit(client: httpx.Client, prompt: str, files: Any = None, **fields: str) -> str:
    resp = client.post("/v1/run", data={"prompt": prompt, **fields}, files=files)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["success"] is True, body
    data = body["data"]
    assert data["status"] == "running" and data["canvas_id"] == data["run_id"], data
    assert data["poll_url"] == f"/v1/run/{data['run_id']}"
    return str(data["run_id"])


def data(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"success", "data"} and body["success"] is True, body
    return dict(body["data"])


def poll_run(client: httpx.Client, run_id: str, deadline_s: float = 120) -> dict[str, Any]:
    """The document's loop: poll until a terminal status, backing off between polls
    (its 15 s -> 60 s, scaled down so that a test takes seconds)."""
    delay, end = 0.1, time.monotonic() + deadline_s
    while True:
        run = data(client.get(f"/v1/run/{run_id}"))
        if run["status"] in TERMINAL:
            return run
        assert run["status"] == "running" and set(run) == RUNNING_KEYS, run
        progress = run["progress"]
        assert set(progress) == {"tasks_completed", "tasks_total", "elapsed_ms"}
        assert 0 <= progress["tasks_completed"] <= progress["tasks_total"]
        assert time.monotonic() < end, f"run {run_id} still running: {run}"
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"success", "error"} and body["success"] is False, body
    assert set(body["error"]) == {"code", "message"} and body["error"]["code"] == code, body
    assert body["error"]["message"], body
    return str(body["error"]["message"])


def test_report_run_polled_to_the_end(ws: Ws) -> None:
    with ws.spine() as spine:
        run_id = submit(
            spine,
            REPORT_SCRIPT,
            files=[("files", ("sales.csv", SALES, "text/csv"))],
            template="report",
            agent_instructions="Write for a C-suite audience.",
        )
        run = poll_run(spine, run_id)
        assert set(run) == COMPLETED_KEYS, run
        assert run["status"] == "completed" and run["canvas_id"] == run_id
        assert isinstance(run["duration_ms"], int) and run["duration_ms"] >= 0
        assert run["result"]["final_output"] == "rows: 3\n"
        assert run["metadata"] == {
            "template_used": "report",
            "models_used": [],  # a shell script calls no model
            "credits_consumed": 0,
        }
        [artifact] = run["result"]["artifacts"]
        assert set(artifact) == {"id", "type", "name", "download_url", "size_bytes"}
        assert artifact["name"] == "Q1_Report.md" and artifact["type"] == "md"
        assert artifact["size_bytes"] == len(REPORT)
        with bare_client(ws.server) as anonymous:  # the link is the credential
            got = anonymous.get(artifact["download_url"])
        assert got.status_code == 200, got.text
        assert got.content == REPORT
        assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(REPORT).hexdigest()

        dag = data(spine.get(f"/v1/canvas/{run_id}/dag"))
        assert dag["canvas_id"] == run_id and dag["status"] == "completed"
        nodes = dag["nodes"]
        assert [n["type"] for n in nodes] == ["input", "output", "artifact"]
        for node in nodes:
            assert set(node) == {
                "id",
                "name",
                "type",
                "status",
                "content",
                "url",
                "sources",
                "started_at",
                "completed_at",
            }
            assert node["status"] == "completed"
        prompt, output, art = nodes
        assert prompt["content"] is None  # the prompt is never kept in the canvas
        assert output["content"] == "rows: 3\n"
        assert art["id"] == artifact["id"] and art["sources"] == ["outputs/Q1_Report.md"]
        edges = {(e["source_id"], e["target_id"]) for e in dag["edges"]}
        assert (prompt["id"], output["id"]) in edges and (prompt["id"], art["id"]) in edges
        with bare_client(ws.server) as anonymous:
            assert anonymous.get(art["url"]).content == REPORT

        tasks = data(spine.get(f"/v1/canvas/{run_id}/tasks"))
        assert tasks["status"] == "completed" and tasks["not_completed"] == []
        assert [t["task_type"] for t in tasks["completed"]] == ["output-task", "artifact-task"]
        assert tasks["progress"]["tasks_completed"] == tasks["progress"]["tasks_total"] == 2
        one = data(spine.get(f"/v1/canvas/{run_id}/tasks/{art['id']}"))
        assert one["task_id"] == art["id"] and one["name"] == "Q1_Report.md"
        assert one["sources"] == ["outputs/Q1_Report.md"] and one["parent_ids"] == [prompt["id"]]
        assert one["metadata"]["sha256"] == hashlib.sha256(REPORT).hexdigest()
        error(spine.get(f"/v1/canvas/{run_id}/tasks/task-nope"), 404, "NOT_FOUND")


def test_failing_script_is_failed_with_errors(ws: Ws) -> None:
    with ws.spine() as spine:
        run_id = submit(spine, "echo some work; echo broken >&2; exit 3")
        run = poll_run(spine, run_id)
    assert set(run) == {"run_id", "status", "errors"}, run
    assert run["run_id"] == run_id and run["status"] == "failed"
    [entry] = run["errors"]
    assert set(entry) == {"error"} and isinstance(entry["error"], str) and entry["error"]


def test_keys_and_visibility(ws: Ws, server: Server) -> None:
    mine = admin(server, "create-key", ws.slug, "--kind", "user")["key"]
    theirs = admin(server, "create-key", ws.slug, "--kind", "user")["key"]
    with ws.spine(mine) as me, ws.spine(theirs) as them, ws.spine() as workspace:
        run_id = submit(me, "echo mine")
        assert poll_run(me, run_id)["status"] == "completed"
        assert data(workspace.get(f"/v1/run/{run_id}"))["run_id"] == run_id
        error(them.get(f"/v1/run/{run_id}"), 404, "NOT_FOUND")
        error(them.get(f"/v1/canvas/{run_id}/dag"), 404, "NOT_FOUND")
    with ws.server.client(ws.key) as control:
        made = control.post(f"/v1/workspaces/{ws.slug}/agents", json={"name": "Analyst"})
        assert made.status_code == 201, made.text
        resp = control.post(f"/v1/workspaces/{ws.slug}/agents/analyst/keys", json={})
        assert resp.status_code == 201, resp.text
        runtime = resp.json()["secret"]
    with ws.spine(runtime) as agent_key, ws.spine() as workspace:
        own = submit(agent_key, "echo analyst")
        assert poll_run(agent_key, own)["result"]["final_output"] == "analyst\n"
        error(agent_key.get(f"/v1/run/{run_id}"), 404, "NOT_FOUND")  # the default agent's
        named = submit(workspace, "echo named", agent="analyst")
        assert data(agent_key.get(f"/v1/run/{named}"))["run_id"] == named
        refused = agent_key.post("/v1/run", data={"prompt": "echo x", "agent": "default"})
        error(refused, 404, "NOT_FOUND")


def test_client_errors_in_spine_envelope(ws: Ws, server: Server) -> None:
    with ws.spine() as spine:
        run_id = submit(spine, "echo fine")
        with bare_client(server) as anonymous:
            error(anonymous.get(f"/v1/run/{run_id}"), 401, "UNAUTHORIZED")
            error(anonymous.post("/v1/run", data={"prompt": "x"}), 401, "UNAUTHORIZED")
        with ws.spine("sk_workspace_not_a_real_key") as wrong:
            error(wrong.get(f"/v1/run/{run_id}"), 401, "UNAUTHORIZED")
        with server.client() as other_workspace:  # tenancy: another workspace sees nothing
            error(other_workspace.get(f"/v1/run/{run_id}"), 404, "NOT_FOUND")
            error(other_workspace.get(f"/v1/canvas/{run_id}/tasks"), 404, "NOT_FOUND")
        error(spine.get("/v1/run/run_does_not_exist"), 404, "NOT_FOUND")
        error(spine.post("/v1/run", data={"prompt": "x", "colour": "red"}), 400, "BAD_REQUEST")
        error(spine.post("/v1/run", data={"template": "report"}), 400, "BAD_REQUEST")
        error(spine.post("/v1/run", data={"prompt": "x", "template": "poster"}), 400, "BAD_REQUEST")
        blocks = {"prompt": "x", "blocks": '["document-block", "hologram-block"]'}
        assert "hologram-block" in error(spine.post("/v1/run", data=blocks), 400, "BAD_REQUEST")
        for name in ("../../etc/passwd", "/etc/passwd"):
            unsafe = [("files", (name, b"x", "text/plain"))]
            resp = spine.post("/v1/run", data={"prompt": "x"}, files=unsafe)
            error(resp, 400, "BAD_REQUEST")
        huge = [("files", ("huge.bin", b"\0" * (32 * 1_048_576 + 1), "application/octet-stream"))]
        error(spine.post("/v1/run", data={"prompt": "x"}, files=huge), 413, "PAYLOAD_TOO_LARGE")
        resp = spine.post("/v1/run", json={"prompt": "x"})
        error(resp, 415, "UNSUPPORTED_MEDIA_TYPE")
        error(spine.delete(f"/v1/run/{run_id}"), 405, "METHOD_NOT_ALLOWED")
        # urlencoded is a form too
        encoded = spine.post(
            "/v1/run",
            content="prompt=echo+encoded",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert encoded.status_code == 202, encoded.text
        done = poll_run(spine, encoded.json()["data"]["run_id"])
        assert done["result"]["final_output"] == "encoded\n"
