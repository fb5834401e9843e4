"""The Spine surface in-process: ``create_app`` over real services on SQLite, no worker.

Runs are ended through the store the way a worker ends them (claim, start,
``finish_run`` with the canvas and artifacts), so every documented shape is
checked here without a harness: running, completed (artifacts, metadata),
partial, failed (failed, cancelled), the DAG, the task tree and one task.
Also: the form (uploads kept in the blob store as the run's ``inputFiles``,
unsafe names, limits, unknown fields, media types), key kinds and
visibility, and that every error is the Spine envelope on Spine paths only.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runyard.api.app import create_app
from runyard.artifacts.blobs import ArtifactBlobs
from runyard.domain import canvas
from runyard.domain.canvas import Artifact, Step
from runyard.domain.entities import KeyKind, RunError, RunOutcome, Workspace
from runyard.domain.requests import AgentCreate
from runyard.services import spine
from runyard.services.container import Services
from runyard.settings import load_settings
from runyard.store.sqlite import SqliteStore
from runyard.types import now_millis

SHELL = [{"harnessName": "shell", "enabled": True, "role": "default"}]


class Http:
    """A synchronous face on ``httpx.AsyncClient`` over ``ASGITransport`` (one event loop)."""

    def __init__(self, app: Any) -> None:
        self._loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://spine.test")

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@dataclass
class App:
    services: Services
    workspace: Workspace
    key: str
    http: Http

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"X-API-KEY": key or self.key}

    def agent(self, slug: str) -> str:
        body = AgentCreate.model_validate({"name": slug, "slug": slug, "harnessTargets": SHELL})
        return self.services.agents.create(self.workspace.id, body).id

    def issue(self, kind: KeyKind, agent_id: str | None = None) -> str:
        return self.services.keys.issue(self.workspace.id, kind, "t", agent_id)[1]

    def submit(self, key: str | None = None, **fields: Any) -> dict[str, Any]:
        resp = self.http.post(
            "/v1/run", data={"prompt": "echo hi", **fields}, headers=self.headers(key)
        )
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert body["success"] is True
        return dict(body["data"])

    def get(self, path: str, key: str | None = None) -> dict[str, Any]:
        resp = self.http.get(path, headers=self.headers(key))
        assert resp.status_code == 200, resp.text
        assert resp.json()["success"] is True
        return dict(resp.json()["data"])


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    settings = load_settings(env={}, data_dir=tmp_path, max_upload_bytes=3 * 1_048_576)
    store = SqliteStore(settings.sqlite_path)
    store.migrate()
    services = Services.build(settings, store)
    workspace, key = services.workspaces.create("default")
    http = Http(create_app(services))
    yield App(services, workspace, key, http)
    http.close()
    store.close()


def error(resp: Any, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"success", "error"} and body["success"] is False, body
    assert set(body["error"]) == {"code", "message"} and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def finish(app: App, outcome: RunOutcome) -> None:
    """End the one queued run as a worker would."""
    store = app.services.store
    token = secrets.token_hex(8)
    now = now_millis()
    claimed = store.claim_run("w", token, now + 60_000, now)
    assert claimed is not None
    assert store.start_run(claimed.id, token, now, "shell", None)
    assert store.finish_run(claimed.id, token, outcome, now_millis())


def ended(app: App, run_id: str, status: str, steps: list[Step], **kw: Any) -> RunOutcome:
    """The outcome a worker reports: the run's steps and artifacts (the canvas is
    drawn from them, and from the run, when it is read)."""
    return RunOutcome(status=status, steps=steps, **kw)


def step(key: str, kind: str, name: str, at: int, ok: bool = True, **kw: Any) -> Step:
    status = "completed" if ok else "failed"
    return Step(key, kind, name, status, at, at + 1, **kw)


def test_submit_keeps_files_and_answers_running(app: App) -> None:
    agent_id = app.agent("default")
    content = b"region,total\nnorth,10\n"
    resp = app.http.post(
        "/v1/run",
        data={"prompt": "cat inputs/sales.csv", "template": "report", "blocks": "table-block"},
        files=[
            ("files", ("sales.csv", content, "text/csv")),
            ("files", ("./data//q1.json", b"{}", "application/json")),
        ],
        headers=app.headers(),
    )
    assert resp.status_code == 202, resp.text
    data = resp.json()["data"]
    assert set(data) == {"run_id", "status", "canvas_id", "poll_url"}
    assert data["status"] == "running" and data["canvas_id"] == data["run_id"]
    run = app.services.store.get_run(app.workspace.id, data["run_id"])
    assert run is not None and run.agent_id == agent_id and run.source == "API"
    sha = hashlib.sha256(content).hexdigest()
    assert run.request["inputFiles"] == [
        {"name": "sales.csv", "sha256": sha, "sizeBytes": 22},
        {"name": "data/q1.json", "sha256": hashlib.sha256(b"{}").hexdigest(), "sizeBytes": 2},
    ]
    assert run.request["spine"] == {"template": "report", "blocks": ["table-block"]}
    blobs = ArtifactBlobs(app.services.settings.artifacts_dir)
    assert blobs.path(sha).read_bytes() == content
    polled = app.get(f"/v1/run/{data['run_id']}")
    assert set(polled) == {"run_id", "status", "canvas_id", "progress"}
    assert polled["status"] == "running"
    assert set(polled["progress"]) == {"tasks_completed", "tasks_total", "elapsed_ms"}


def test_completed_run_dag_and_tasks(app: App) -> None:
    app.agent("default")
    run_id = app.submit(template="memo")["run_id"]
    blobs = ArtifactBlobs(app.services.settings.artifacts_dir)
    content = b"# Q1\nall good\n"
    with tempfile.TemporaryFile() as handle:
        handle.write(content)
        handle.seek(0)
        sha, size = blobs.put_fd(handle.fileno(), 1 << 20)
    art = Artifact(
        canvas.block_id(run_id, "artifact:Q1_Report.md"),
        run_id,
        app.workspace.id,
        "Q1_Report.md",
        "md",
        "text/markdown",
        size,
        sha,
        now_millis(),
    )
    t = now_millis() - 40
    steps = [
        step("model:0", "model_call", "small", t, metadata={"model": "small"}),
        step("tool:0", "tool_call", "write_file", t + 2, content="wrote", sources=["a.txt"]),
        step("model:1", "model_call", "big", t + 4, metadata={"model": "big"}),
    ]
    calls = [{"model": "small", "startedAt": t, "index": 0}, {"model": "big", "startedAt": t + 4}]
    usage = {"source": "provider_response", "totalTokens": 1500}
    finish(
        app,
        ended(
            app,
            run_id,
            "completed",
            steps,
            output="done",
            artifacts=[art],
            evidence={"modelCalls": calls},
            token_usage=usage,
        ),
    )
    doc = app.get(f"/v1/run/{run_id}")
    assert set(doc) == {"run_id", "status", "canvas_id", "duration_ms", "result", "metadata"}
    assert doc["status"] == "completed" and doc["result"]["final_output"] == "done"
    assert doc["metadata"] == {
        "template_used": "memo",
        "models_used": ["small", "big"],
        "credits_consumed": 2,
    }
    [listed] = doc["result"]["artifacts"]
    assert {k: listed[k] for k in ("id", "type", "name", "size_bytes")} == {
        "id": art.id,
        "type": "md",
        "name": "Q1_Report.md",
        "size_bytes": len(content),
    }
    download = app.http.get(listed["download_url"])  # no API key: the link is the credential
    assert download.status_code == 200 and download.content == content

    dag = app.get(f"/v1/canvas/{run_id}/dag")
    assert set(dag) == {"canvas_id", "canvas_name", "status", "nodes", "edges"}
    types = [n["type"] for n in dag["nodes"]]
    assert types == ["input", "model_call", "tool_call", "model_call", "output", "artifact"]
    ids = {n["type"] + ":" + n["name"]: n["id"] for n in dag["nodes"]}
    edges = {(e["source_id"], e["target_id"]) for e in dag["edges"]}
    assert (ids["input:prompt"], ids["model_call:small"]) in edges
    assert (ids["model_call:small"], ids["tool_call:write_file"]) in edges
    assert (ids["tool_call:write_file"], ids["model_call:big"]) in edges
    assert (ids["model_call:big"], ids["output:output"]) in edges
    assert (ids["model_call:big"], art.id) in edges
    art_node = next(n for n in dag["nodes"] if n["type"] == "artifact")
    assert art_node["url"].split("?")[0] == listed["download_url"].split("?")[0]

    tasks = app.get(f"/v1/canvas/{run_id}/tasks")
    assert tasks["status"] == "completed" and tasks["not_completed"] == []
    assert tasks["progress"]["tasks_completed"] == tasks["progress"]["tasks_total"] == 5
    small = next(t for t in tasks["completed"] if t["name"] == "small")
    assert small["task_type"] == "model-call-task"
    assert [c["name"] for c in small["children"]] == ["write_file"]
    assert all(t["block_type"] != "input" for t in tasks["completed"])
    one = app.get(f"/v1/canvas/{run_id}/tasks/{ids['tool_call:write_file']}")
    assert one["content"] == "wrote" and one["sources"] == ["a.txt"]
    assert one["task_type"] == "tool-call-task" and one["parent_ids"] == [ids["model_call:small"]]
    parent = app.get(f"/v1/canvas/{run_id}/tasks/{ids['model_call:small']}")
    assert [c["task_id"] for c in parent["children"]] == [ids["tool_call:write_file"]]
    missing = app.http.get(f"/v1/canvas/{run_id}/tasks/nope", headers=app.headers())
    error(missing, 404, "NOT_FOUND")


def test_partial_and_failed_shapes(app: App) -> None:
    app.agent("default")
    partial_id = app.submit()["run_id"]
    t = now_millis()
    steps = [step("model:0", "model_call", "m", t, ok=False, metadata={"error": "upstream 503"})]
    finish(app, ended(app, partial_id, "completed", steps, output="half"))
    doc = app.get(f"/v1/run/{partial_id}")
    assert doc["status"] == "partial" and doc["result"]["final_output"] == "half"
    assert doc["errors"] == [{"error": "model_call 'm' failed: upstream 503"}]

    failed_id = app.submit()["run_id"]
    error_ = RunError(code="harness_failed", message="exit status 3")
    finish(app, ended(app, failed_id, "failed", [], error=error_))
    assert app.get(f"/v1/run/{failed_id}") == {
        "run_id": failed_id,
        "status": "failed",
        "errors": [{"error": "exit status 3"}],
    }
    cancelled_id = app.submit()["run_id"]
    run = app.services.store.get_run(app.workspace.id, cancelled_id)
    assert run is not None
    app.services.runs.cancel(app.workspace.id, run.agent_id, cancelled_id)
    doc = app.get(f"/v1/run/{cancelled_id}")
    assert doc["status"] == "failed" and doc["errors"][0]["error"]
    assert app.get(f"/v1/canvas/{cancelled_id}/dag")["status"] == "failed"


def test_which_agent_and_who_sees_what(app: App) -> None:
    resp = app.http.post("/v1/run", data={"prompt": "x"}, headers=app.headers())
    assert "no agent" in error(resp, 400, "BAD_REQUEST")
    oldest = app.agent("oldest")
    other = app.agent("other")
    assert _agent_of(app, app.submit()["run_id"]) == oldest
    default = app.agent("default")
    assert _agent_of(app, app.submit()["run_id"]) == default
    assert _agent_of(app, app.submit(agent="other")["run_id"]) == other
    resp = app.http.post("/v1/run", data={"prompt": "x", "agent": "nope"}, headers=app.headers())
    error(resp, 404, "NOT_FOUND")

    alice, bob = app.issue(KeyKind.USER), app.issue(KeyKind.USER)
    mine = app.submit(alice)["run_id"]
    app.get(f"/v1/run/{mine}", alice)
    app.get(f"/v1/run/{mine}")  # the workspace key sees every run
    error(app.http.get(f"/v1/run/{mine}", headers=app.headers(bob)), 404, "NOT_FOUND")
    error(app.http.get(f"/v1/canvas/{mine}/dag", headers=app.headers(bob)), 404, "NOT_FOUND")

    runtime = app.issue(KeyKind.AGENT, other)
    own = app.submit(runtime)["run_id"]
    assert _agent_of(app, own) == other
    app.get(f"/v1/run/{own}", runtime)
    error(app.http.get(f"/v1/run/{mine}", headers=app.headers(runtime)), 404, "NOT_FOUND")
    named = app.http.post(
        "/v1/run", data={"prompt": "x", "agent": "default"}, headers=app.headers(runtime)
    )
    error(named, 404, "NOT_FOUND")

    ws2, key2 = app.services.workspaces.create("elsewhere")
    error(app.http.get(f"/v1/run/{mine}", headers=app.headers(key2)), 404, "NOT_FOUND")
    assert ws2.id != app.workspace.id


def _agent_of(app: App, run_id: str) -> str:
    run = app.services.store.get_run(app.workspace.id, run_id)
    assert run is not None
    return run.agent_id


def test_client_errors_in_the_spine_envelope(app: App) -> None:
    app.agent("default")
    post = app.http.post
    error(post("/v1/run", data={"prompt": "x"}), 401, "UNAUTHORIZED")
    error(app.http.get("/v1/run/run_x"), 401, "UNAUTHORIZED")
    h = app.headers()
    error(app.http.get("/v1/run/run_x", headers=h), 404, "NOT_FOUND")
    error(app.http.get("/v1/canvas/run_x/tasks", headers=h), 404, "NOT_FOUND")
    error(app.http.get("/v1/run/run_x?verbose=1", headers=h), 400, "BAD_REQUEST")
    error(app.http.get("/v1/run", headers=h), 405, "METHOD_NOT_ALLOWED")
    error(post("/v1/run", data={"prompt": "x", "colour": "red"}, headers=h), 400, "BAD_REQUEST")
    error(post("/v1/run", data={"template": "report"}, headers=h), 400, "BAD_REQUEST")
    error(post("/v1/run", data={"prompt": "x", "blocks": "nope"}, headers=h), 400, "BAD_REQUEST")
    error(post("/v1/run", json={"prompt": "x"}, headers=h), 415, "UNSUPPORTED_MEDIA_TYPE")
    bad = b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx'  # unterminated
    headers = {**h, "Content-Type": "multipart/form-data; boundary=b"}
    error(post("/v1/run", content=bad, headers=headers), 400, "BAD_REQUEST")
    deep = "/".join("d" * 9)
    for name in ("../escape.txt", "/etc/passwd", "a/../../b", "", ".", "a\\b", deep):
        files = [("files", (name, b"x", "text/plain"))]
        resp = post("/v1/run", data={"prompt": "x"}, files=files, headers=h)
        error(resp, 400, "BAD_REQUEST")
    twice = [("files", ("a.txt", b"1", "text/plain")), ("files", ("a.txt", b"2", "text/plain"))]
    error(post("/v1/run", data={"prompt": "x"}, files=twice, headers=h), 400, "BAD_REQUEST")
    many = [("files", (f"f{i}.txt", b"x", "text/plain")) for i in range(21)]
    error(post("/v1/run", data={"prompt": "x"}, files=many, headers=h), 400, "BAD_REQUEST")
    limit = app.services.settings.max_input_bytes
    upload_limit = app.services.settings.max_upload_bytes
    huge = [("files", ("huge.bin", b"\0" * (upload_limit + 1), "application/octet-stream"))]
    error(post("/v1/run", data={"prompt": "x"}, files=huge, headers=h), 413, "PAYLOAD_TOO_LARGE")
    long_prompt = {"prompt": "x" * (limit + 1)}
    error(post("/v1/run", data=long_prompt, headers=h), 413, "PAYLOAD_TOO_LARGE")
    as_file = [("prompt", ("p.txt", b"x", "text/plain"))]
    error(post("/v1/run", files=as_file, headers=h), 400, "BAD_REQUEST")
    # Nothing above queued a run; and "/v1/runs…" is not this surface.
    assert app.services.store.list_runs(app.workspace.id, None, 10, None) == []
    native = app.http.get("/v1/runs/x", headers=h)
    assert native.status_code == 404 and native.json()["defined"] is True


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
NAMES = st.one_of(st.sampled_from(spine.FORM_FIELDS), TEXT.filter(bool))


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fields=st.lists(st.tuples(NAMES, TEXT), max_size=6),
    files=st.lists(st.tuples(NAMES, TEXT, st.binary(max_size=64)), max_size=3),
)
def test_no_form_makes_a_server_error(
    app: App, fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]
) -> None:
    if app.services.store.get_agent(app.workspace.id, slug="default") is None:
        app.agent("default")
    uploads = [(key, (name, content, "application/octet-stream")) for key, name, content in files]
    form: dict[str, list[str]] = {}
    for key, value in fields:
        form.setdefault(key, []).append(value)
    resp = app.http.post("/v1/run", data=form, files=uploads or None, headers=app.headers())
    assert resp.status_code < 500, resp.text
    body = resp.json()
    assert body["success"] is (resp.status_code == 202), body
    if resp.status_code != 202:
        assert re.fullmatch(r"[A-Z][A-Z_]+", body["error"]["code"]), body


def test_uploads_larger_than_a_json_body_are_accepted_up_to_the_upload_limit(app: App) -> None:
    """Files bigger than the JSON body cap go through; past the upload limit is a 413,
    also for a chunked body with no Content-Length (counted while it streams)."""
    h = app.headers()
    app.agent("default")
    size = app.services.settings.max_input_bytes * 2  # over the JSON body cap
    files = [("files", ("big.bin", b"\1" * size, "application/octet-stream"))]
    resp = app.http.post("/v1/run", data={"prompt": "x"}, files=files, headers=h)
    assert resp.status_code == 202, resp.text
    run = app.services.store.get_run(app.workspace.id, resp.json()["data"]["run_id"])
    assert run is not None
    assert run.request["inputFiles"][0]["sizeBytes"] == size
    boundary = "runyard-chunked"
    limit = app.services.settings.max_upload_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="files";'
            ' filename="f.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        for _ in range(limit // 65_536 + 2):
            yield b"\0" * 65_536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**h, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    resp = app.http.post("/v1/run", content=chunks(), headers=headers)
    error(resp, 413, "PAYLOAD_TOO_LARGE")
