"""The URAgents surface over HTTP: agents, manual runs, events, and its error envelope.

Against the session's ``runyard up``: the reference's polling loop run as
written (trigger with no body, then ``…/events?limit=1`` until COMPLETED or
FAILED); the status mapping both ways (each run state shows as its event
status, and each event status filters to exactly those runs); ``startedAfter``
/ ``startedBefore``; paging to the end with ``nextToken`` while runs are
added (no duplicates, no gaps); ``/v1/events`` with ``agentId``; key scoping;
errors in ``{"error": {"code", "message"}}`` while the native routes under
``/v1/agents/{agentId}`` keep the native envelope.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.test_api_support import (
    AGENTS,
    RuntimeAgent,
    admin,
    assert_envelope,
    assert_ts,
    poll,
    runtime_agent,
    unique,
)
from tests.conftest import Server

EVENT_KEYS = {
    "id",
    "agentId",
    "userId",
    "status",
    "startedAt",
    "completedAt",
    "error",
    "finalModel",
    "browserStepCount",
    "browserSessionSeconds",
    "createdAt",
    "updatedAt",
}
DONE = {"COMPLETED", "FAILED"}


@pytest.fixture
def rt(server: Server) -> Iterator[RuntimeAgent]:
    made = runtime_agent(server)
    with made.client:
        yield made


@pytest.fixture
def single(server: Server) -> Iterator[RuntimeAgent]:
    made = runtime_agent(server, runtimePolicy={"maxConcurrentRuns": 1})
    with made.client:
        yield made


@pytest.fixture
def ws(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def assert_error(resp: httpx.Response, status: int, code: str) -> str:
    """This product's envelope, exactly: ``{"error": {"code", "message"}}``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return str(body["error"]["message"])


def execute(client: httpx.Client, agent_id: str, **body: Any) -> str:
    resp = client.post(f"/v1/agents/{agent_id}/execute", json=body or None)
    assert resp.status_code == 202, resp.text
    data = resp.json()["data"]
    assert set(data) == {"message", "requestId", "agentId"}
    assert data["message"] == "Execution started. Poll events for status."
    assert data["agentId"] == agent_id
    return str(data["requestId"])


def events(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    resp = client.get(path, params=params)
    assert resp.status_code == 200, resp.text
    body = dict(resp.json())
    assert set(body) == {"data", "nextToken"}, body
    return body


def event(client: httpx.Client, agent_id: str, run_id: str) -> dict[str, Any]:
    found = [e for e in events(client, f"/v1/agents/{agent_id}/events")["data"]]
    return next(e for e in found if e["id"] == run_id)


def done(client: httpx.Client, agent_id: str, run_id: str) -> dict[str, Any]:
    return poll(lambda: event(client, agent_id, run_id), lambda e: e["status"] in DONE, seconds=60)


def test_polling_loop_as_written(server: Server, rt: RuntimeAgent, ws: httpx.Client) -> None:
    resp = ws.post(
        f"{AGENTS}/{rt.slug}/schedules",
        json={"name": "daily", "cron": "0 9 * * *", "prompt": "echo stored", "enabled": False},
    )
    assert resp.status_code == 201, resp.text
    # 1. Trigger run: no body, no Content-Type, exactly like the doc's curl.
    with httpx.Client(base_url=server.base_url, timeout=60) as curl:
        headers = {"Authorization": f"Bearer {rt.secret}"}
        response = curl.post(f"/v1/agents/{rt.id}/execute", headers=headers)
        assert response.status_code == 202, response.text
        request_id = response.json()["data"]["requestId"]
        # 2. Poll until done (bounded here; the doc sleeps 5 s between polls).
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while True:
            status = curl.get(f"/v1/agents/{rt.id}/events?limit=1", headers=headers).json()["data"][
                0
            ]["status"]
            seen.append(status)
            if status in ("COMPLETED", "FAILED"):
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
    assert status == "COMPLETED", seen
    assert set(seen) <= {"PENDING", "RUNNING", "COMPLETED"}, seen
    ev = event(rt.client, rt.id, request_id)
    assert set(ev) == EVENT_KEYS
    assert ev["userId"] == rt.key_id and ev["error"] is None
    assert ev["browserStepCount"] == 0 and ev["browserSessionSeconds"] == 0
    for key in ("startedAt", "completedAt", "createdAt", "updatedAt"):
        assert_ts(ev[key])
    assert ev["createdAt"] <= ev["startedAt"] <= ev["completedAt"] <= ev["updatedAt"]
    assert ev["finalModel"] == ws.get(f"{AGENTS}/{rt.slug}").json()["agent"]["modelPolicy"].get(
        "model"
    )
    run = rt.run(request_id)
    assert run["source"] == "API" and run["output"] == "stored\n"


def test_execute_with_a_prompt_and_without_one(rt: RuntimeAgent) -> None:
    run_id = execute(rt.client, rt.id, input="echo given")
    assert done(rt.client, rt.id, run_id)["status"] == "COMPLETED"
    assert rt.run(run_id)["output"] == "given\n"
    run_id = execute(rt.client, rt.id, prompt="exit 3")
    failed = done(rt.client, rt.id, run_id)
    assert failed["status"] == "FAILED"
    assert isinstance(failed["error"], str) and failed["error"]
    before = events(rt.client, f"/v1/agents/{rt.id}/events")["data"]
    message = assert_error(rt.client.post(f"/v1/agents/{rt.id}/execute"), 400, "BAD_REQUEST")
    assert "prompt" in message
    assert_error(
        rt.client.post(f"/v1/agents/{rt.id}/execute", json={"input": "x", "prompt": "y"}),
        400,
        "BAD_REQUEST",
    )
    assert_error(
        rt.client.post(f"/v1/agents/{rt.id}/execute", json={"bogus": 1}), 400, "BAD_REQUEST"
    )
    assert_error(
        rt.client.post(
            f"/v1/agents/{rt.id}/execute",
            content=b"{nope",
            headers={"Content-Type": "application/json"},
        ),
        400,
        "BAD_REQUEST",
    )
    assert events(rt.client, f"/v1/agents/{rt.id}/events")["data"] == before


def test_agents_are_read_only_and_scoped(rt: RuntimeAgent, ws: httpx.Client) -> None:
    other = runtime_agent_id(ws)
    listed = ws.get("/v1/agents")
    assert listed.status_code == 200, listed.text
    ids = [a["id"] for a in listed.json()["data"]]
    assert rt.id in ids and other in ids
    mine = rt.client.get("/v1/agents").json()["data"]
    assert [a["id"] for a in mine] == [rt.id]
    one = rt.client.get(f"/v1/agents/{rt.id}")
    assert one.status_code == 200, one.text
    doc = one.json()["data"]
    assert doc["id"] == rt.id and doc["slug"] == rt.slug
    assert_ts(doc["createdAt"])
    assert_error(rt.client.get(f"/v1/agents/{other}"), 404, "NOT_FOUND")
    assert_error(rt.client.get(f"/v1/agents/{other}/events"), 404, "NOT_FOUND")
    assert_error(rt.client.get("/v1/events", params={"agentId": other}), 404, "NOT_FOUND")
    assert_error(
        rt.client.post(f"/v1/agents/{other}/execute", json={"input": "x"}), 404, "NOT_FOUND"
    )
    assert events(ws, f"/v1/agents/{rt.id}/events")["data"] == []


def runtime_agent_id(ws: httpx.Client) -> str:
    resp = ws.post(AGENTS, json={"name": f"Other {uuid.uuid4().hex[:8]}"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["agent"]["id"])


def test_status_mapping_both_ways(single: RuntimeAgent) -> None:
    c, path = single.client, f"/v1/agents/{single.id}/events"
    marker = f"{uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    running = execute(c, single.id, input=f"sleep {marker}")
    poll(lambda: event(c, single.id, running), lambda e: e["status"] == "RUNNING")
    pending = execute(c, single.id, input="echo later")
    ok = event(c, single.id, pending)
    assert ok["status"] == "PENDING" and ok["startedAt"] is None and ok["error"] is None

    def ids(status: str, **extra: Any) -> list[str]:
        return [e["id"] for e in events(c, path, status=status, **extra)["data"]]

    assert ids("PENDING") == [pending] and ids("RUNNING") == [running]
    assert ids("PENDING", startedAfter="2000-01-01T00:00:00Z") == []
    assert ids("pending") == [pending]
    assert ids("COMPLETED") == [] and ids("FAILED") == []
    assert c.post(f"{single.base}/runs/{pending}/cancel").status_code == 200
    assert c.post(f"{single.base}/runs/{running}/cancel").status_code == 200
    assert done(c, single.id, running)["status"] == "FAILED"
    cancelled = event(c, single.id, pending)
    assert cancelled["status"] == "FAILED" and cancelled["error"]
    assert sorted(ids("FAILED")) == sorted([pending, running])
    finished = execute(c, single.id, input="echo ok")
    assert done(c, single.id, finished)["status"] == "COMPLETED"
    assert ids("COMPLETED") == [finished] and ids("PENDING") == ids("RUNNING") == []
    assert_error(c.get(path, params={"status": "DONE"}), 400, "BAD_REQUEST")


def test_started_filters(rt: RuntimeAgent) -> None:
    c, path = rt.client, f"/v1/agents/{rt.id}/events"
    first = done(c, rt.id, execute(c, rt.id, input="echo one"))
    second = done(c, rt.id, execute(c, rt.id, input="echo two"))
    both = {first["id"], second["id"]}

    def ids(**params: Any) -> set[str]:
        return {e["id"] for e in events(c, path, **params)["data"]}

    assert ids(startedAfter="2000-01-01T00:00:00Z") == both
    assert ids(startedBefore="2000-01-01T00:00:00Z") == set()
    assert ids(startedAfter=first["startedAt"]) == {second["id"]}
    assert ids(startedBefore=second["startedAt"]) == {first["id"]}
    assert ids(startedAfter=first["startedAt"], startedBefore=second["startedAt"]) == set()
    assert (
        ids(startedAfter="2000-01-01T00:00:00+00:00", startedBefore="2999-01-01T00:00:00Z") == both
    )
    assert_error(c.get(path, params={"startedAfter": "yesterday"}), 400, "BAD_REQUEST")
    assert_error(c.get(path, params={"startedBefore": "2025-01-01T09:00:00"}), 400, "BAD_REQUEST")


def test_pagination_to_the_end_while_runs_are_added(rt: RuntimeAgent, ws: httpx.Client) -> None:
    c, path = rt.client, f"/v1/agents/{rt.id}/events"
    made = [execute(c, rt.id, input="true") for _ in range(7)]
    seen: list[str] = []
    added: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if token is not None:
            params["nextToken"] = token
        page = events(c, path, **params)
        assert len(page["data"]) <= 2
        seen.extend(e["id"] for e in page["data"])
        added.append(execute(c, rt.id, input="true"))
        token = page["nextToken"]
        if token is None:
            break
    assert seen == list(reversed(made)), (seen, made)
    assert not set(seen) & set(added)
    everything = events(ws, "/v1/events", agentId=rt.id, limit=200)["data"]
    assert [e["id"] for e in everything] == list(reversed(made + added))
    assert_error(c.get(path, params={"nextToken": "not-ours"}), 400, "BAD_REQUEST")
    assert_error(c.get(path, params={"limit": 0}), 400, "BAD_REQUEST")
    assert_error(c.get(path, params={"limit": 201}), 400, "BAD_REQUEST")
    assert len(events(c, path)["data"]) == len(made) + len(added)  # default limit is 50


def test_all_events_across_agents(rt: RuntimeAgent, server: Server, ws: httpx.Client) -> None:
    other = runtime_agent(server)
    with other.client:
        mine = execute(rt.client, rt.id, input="true")
        theirs = execute(other.client, other.id, input="true")
        assert [e["id"] for e in events(ws, "/v1/events", limit=2)["data"]] == [theirs, mine]
        scoped = events(ws, "/v1/events", agentId=rt.id)["data"]
        assert [e["id"] for e in scoped] == [mine]
        assert {e["id"] for e in events(rt.client, "/v1/events")["data"]} == {mine}
        assert {e["id"] for e in events(other.client, "/v1/events")["data"]} == {theirs}


def test_error_envelopes(server: Server, rt: RuntimeAgent) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as anon:
        for path in ("/v1/agents", f"/v1/agents/{rt.id}", "/v1/events"):
            assert_error(anon.get(path), 401, "UNAUTHORIZED")
        assert_error(anon.post(f"/v1/agents/{rt.id}/execute"), 401, "UNAUTHORIZED")
        bad = {"Authorization": "Bearer sk_workspace_nope"}
        assert_error(anon.get(f"/v1/agents/{rt.id}/events", headers=bad), 401, "UNAUTHORIZED")
        assert_error(anon.delete("/v1/events", headers=bad), 405, "METHOD_NOT_ALLOWED")
        # The native routes under the same prefix keep the native envelope.
        assert_envelope(anon.get(f"/v1/agents/{rt.id}/status"), 401, "UNAUTHORIZED")
    assert_error(rt.client.get("/v1/agents/agent_missing"), 404, "NOT_FOUND")
    assert_envelope(rt.client.get(f"{rt.base}/runs/run_missing"), 404, "NOT_FOUND")
    assert rt.client.get(f"{rt.base}/status").status_code == 200


def test_other_workspaces_and_personal_keys(server: Server, rt: RuntimeAgent) -> None:
    run_id = execute(rt.client, rt.id, input="true")
    stranger = str(admin(server, "create-workspace", unique("uraws"))["workspaceKey"])
    personal = str(admin(server, "create-key", "default", "--kind", "user")["key"])
    with server.client(stranger) as c:
        assert c.get("/v1/agents").json() == {"data": []}
        assert events(c, "/v1/events") == {"data": [], "nextToken": None}
        assert_error(c.get(f"/v1/agents/{rt.id}"), 404, "NOT_FOUND")
        assert_error(c.get(f"/v1/agents/{rt.id}/events"), 404, "NOT_FOUND")
        assert_error(c.get("/v1/events", params={"agentId": rt.id}), 404, "NOT_FOUND")
        assert_error(c.post(f"/v1/agents/{rt.id}/execute", json={"input": "x"}), 404, "NOT_FOUND")
    with server.client(personal) as c:
        assert_error(c.get("/v1/agents"), 403, "FORBIDDEN")
        assert_error(c.get("/v1/events"), 403, "FORBIDDEN")
    assert [e["id"] for e in events(rt.client, "/v1/events")["data"]] == [run_id]
