"""The Warp ambient-agents surface over HTTP, against the session's ``runyard up``.

Each test works in a workspace of its own (``runyard admin create-workspace``)
so that listings see only the runs it made. Covered: the documented requests
as a curl user would send them (Bearer key, JSON body), the default-agent
rule, filters in every dimension, both sort orders, a cursor walk to the end
while runs are being added (no duplicates, no gaps), the state mapping both
ways, cancel cases, RFC 7807 errors, and the ``/api/v1`` prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from runyard.domain.states import RunStatus
from runyard.services.warp import STATES, state_filter, warp_state
from tests.acceptance.test_api_support import admin, assert_ts, bare_client, poll, unique
from tests.conftest import Server

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code"}


@dataclass
class Ws:
    slug: str
    key_id: str | None
    client: httpx.Client


@pytest.fixture
def ws(server: Server) -> Iterator[Ws]:
    slug = unique("warp")
    key = admin(server, "create-workspace", slug)["workspaceKey"]
    with server.client(key) as client:
        yield Ws(slug, None, client)


def agent(ws: Ws, slug: str | None = None, **body: Any) -> str:
    name = slug or unique("agent")
    doc = {"name": name, "runtimePolicy": {"maxConcurrentRuns": 4}, **body}
    if slug:
        doc["slug"] = slug
    resp = ws.client.post(f"/v1/workspaces/{ws.slug}/agents", json=doc)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["agent"]["slug"])


def run(client: httpx.Client, prompt: str, path: str = "/agent/run", **body: Any) -> str:
    resp = client.post(path, json={"prompt": prompt, **body})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert set(doc) == {"run_id", "state"}, doc
    assert doc["state"] in ("QUEUED", "PENDING"), doc
    return str(doc["run_id"])


def detail(client: httpx.Client, run_id: str) -> dict[str, Any]:
    resp = client.get(f"/agent/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def ended(client: httpx.Client, run_id: str) -> dict[str, Any]:
    done = {"SUCCEEDED", "FAILED", "CANCELLED"}
    return poll(lambda: detail(client, run_id), lambda d: d["state"] in done, seconds=60)


def listing(client: httpx.Client, **params: Any) -> dict[str, Any]:
    resp = client.get("/agent/runs", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def ids(client: httpx.Client, **params: Any) -> list[str]:
    return [r["run_id"] for r in listing(client, limit=500, **params)["runs"]]


def assert_problem(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = dict(resp.json())
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status and body["code"] == code, body
    assert body["title"] and body["detail"] and body["type"] and body["instance"], body
    return body


def test_documented_requests_end_to_end(ws: Ws) -> None:
    slug = agent(ws)
    run_id = run(ws.client, "echo hello-warp", title="Say hello", team=True)
    doc = ended(ws.client, run_id)
    assert doc["run_id"] == run_id and doc["title"] == "Say hello"
    assert doc["state"] == "SUCCEEDED" and doc["prompt"] == "echo hello-warp"
    assert doc["source"] == "API" and doc["team"] is True
    assert doc["agent_config"] == {"name": slug, "model_id": None}
    for field in ("created_at", "updated_at", "started_at"):
        assert_ts(doc[field])
    page = listing(ws.client)
    assert [r["run_id"] for r in page["runs"]] == [run_id]
    assert "prompt" not in page["runs"][0]
    assert page["page_info"] == {"has_next_page": False, "next_cursor": None}
    untitled = run(ws.client, "echo second\nmore", path="/agent/runs")
    assert detail(ws.client, untitled)["title"] == "echo second"


def test_api_v1_prefix_serves_the_same_surface(ws: Ws) -> None:
    agent(ws)
    run_id = run(ws.client, "echo v1", path="/api/v1/agent/run")
    resp = ws.client.get(f"/api/v1/agent/runs/{run_id}")
    assert resp.status_code == 200 and resp.json()["run_id"] == run_id
    assert [r["run_id"] for r in ws.client.get("/api/v1/agent/runs").json()["runs"]] == [run_id]
    assert_problem(ws.client.get("/api/v1/agent/runs/run_nope"), 404, "NOT_FOUND")
    assert_problem(ws.client.get("/api/v1/agent/runs?limit=0"), 400, "BAD_REQUEST")


def test_which_agent_runs_a_prompt(ws: Ws) -> None:
    resp = ws.client.post("/agent/run", json={"prompt": "echo x"})
    assert "no agent" in assert_problem(resp, 400, "BAD_REQUEST")["detail"]
    oldest = agent(ws)
    agent(ws)
    first = run(ws.client, "echo a")
    assert detail(ws.client, first)["agent_config"]["name"] == oldest
    agent(ws, slug="default")
    assert detail(ws.client, run(ws.client, "echo b"))["agent_config"]["name"] == "default"
    named = run(ws.client, "echo c", config={"name": oldest})
    assert detail(ws.client, named)["agent_config"]["name"] == oldest
    missing = ws.client.post("/agent/run", json={"prompt": "x", "config": {"name": "nope"}})
    assert_problem(missing, 404, "NOT_FOUND")


def test_state_mapping_both_ways() -> None:
    for status in RunStatus:
        statuses, _ = state_filter(warp_state(status.value, "ready"))
        assert status.value in statuses
    for state in STATES:
        statuses, provisioning = state_filter(state)
        env = "provisioning" if provisioning else "pending"
        assert {warp_state(s, env) for s in statuses} == {state}
    assert warp_state("queued", "provisioning") == "PENDING"
    assert warp_state("queued", "pending") == "QUEUED"
    assert warp_state("running", "provisioning") == "INPROGRESS"
    assert warp_state("timed_out") == warp_state("failed") == "FAILED"
    assert warp_state("partial") == warp_state("completed") == "SUCCEEDED"


def test_states_filters_and_sorting(ws: Ws, server: Server) -> None:
    plain = agent(ws)
    models = agent(ws, modelPolicy={"model": "m-1", "allowedModels": ["m-2"]})
    ok = run(ws.client, "echo ok", config={"name": plain})
    bad = run(ws.client, "exit 3", config={"name": plain})
    m2 = run(ws.client, "echo m2", config={"name": models, "model_id": "m-2"})
    assert ended(ws.client, ok)["state"] == "SUCCEEDED"
    failed = ended(ws.client, bad)
    assert failed["state"] == "FAILED" and failed["status_message"]["message"]
    ended(ws.client, m2)
    assert set(ids(ws.client, state="SUCCEEDED")) == {ok, m2}
    assert ids(ws.client, state="FAILED") == [bad]
    assert ids(ws.client, state="INPROGRESS") == []
    assert set(ids(ws.client, name=plain)) == {ok, bad}
    assert ids(ws.client, config_name=models) == [m2]
    assert ids(ws.client, model_id="m-2") == [m2]
    assert ids(ws.client, source="SCHEDULED_AGENT") == []
    assert len(ids(ws.client, source="API")) == 3
    middle = detail(ws.client, bad)["created_at"]
    assert ids(ws.client, created_before=middle) == [ok]
    assert ids(ws.client, created_after=middle) == [m2]
    assert ids(ws.client) == [m2, bad, ok]
    assert ids(ws.client, sort_order="asc") == [ok, bad, m2]
    by_update = listing(ws.client, sort_by="updated_at", sort_order="asc")["runs"]
    stamps = [r["updated_at"] for r in by_update]
    assert stamps == sorted(stamps) and len(stamps) == 3


def test_personal_keys_see_own_and_team_runs(ws: Ws, server: Server) -> None:
    agent(ws)
    mine_key = admin(server, "create-key", ws.slug, "--kind", "user")
    other_key = admin(server, "create-key", ws.slug, "--kind", "user")
    with server.client(mine_key["key"]) as mine, server.client(other_key["key"]) as other:
        private = run(mine, "echo private")
        shared = run(mine, "echo shared", team=True)
        theirs = run(other, "echo theirs")
        assert set(ids(mine)) == {private, shared}
        assert set(ids(other)) == {shared, theirs}
        assert set(ids(ws.client)) == {private, shared, theirs}
        assert ids(ws.client, creator=mine_key["keyId"], sort_order="asc") == [private, shared]
        assert_problem(other.get(f"/agent/runs/{private}"), 404, "NOT_FOUND")
        assert_problem(other.post(f"/agent/runs/{private}/cancel"), 404, "NOT_FOUND")
        assert detail(other, shared)["prompt"] == "echo shared"


def test_cursor_walk_while_runs_are_added(ws: Ws) -> None:
    slug = agent(ws)
    before = [run(ws.client, f"true {i}", config={"name": slug}) for i in range(23)]
    stop = threading.Event()
    added: list[str] = []

    def add() -> None:
        while not stop.is_set() and len(added) < 40:
            added.append(run(ws.client, "true added", config={"name": slug}))

    adder = threading.Thread(target=add)
    adder.start()
    try:
        for order in ("desc", "asc"):
            seen: list[dict[str, Any]] = []
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 4, "sort_order": order}
                if cursor:
                    params["cursor"] = cursor
                page = listing(ws.client, **params)
                seen += page["runs"]
                assert len(page["runs"]) <= 4
                if not page["page_info"]["has_next_page"]:
                    break
                cursor = page["page_info"]["next_cursor"]
            got = [r["run_id"] for r in seen]
            assert len(got) == len(set(got)), "a run was listed twice"
            assert set(before) <= set(got), "a run that existed was skipped"
            stamps = [r["created_at"] for r in seen]
            assert stamps == sorted(stamps, reverse=order == "desc")
    finally:
        stop.set()
        adder.join()
    assert added, "no run was added during the walk"


def test_cancel_cases(ws: Ws) -> None:
    slug = agent(ws, runtimePolicy={"maxConcurrentRuns": 1})
    running = run(ws.client, "sleep 30", config={"name": slug})
    queued = run(ws.client, "echo never", config={"name": slug})
    poll(lambda: detail(ws.client, running), lambda d: d["state"] == "INPROGRESS", seconds=60)
    assert detail(ws.client, queued)["state"] in ("QUEUED", "PENDING")
    assert ws.client.get("/agent/runs", params={"state": "QUEUED"}).json()["runs"]
    resp = ws.client.post(f"/agent/runs/{queued}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"run_id": queued, "state": "CANCELLED", "cancel_requested": False}
    resp = ws.client.post(f"/agent/runs/{running}/cancel")
    assert resp.status_code == 200 and resp.json()["cancel_requested"] is True, resp.text
    assert ended(ws.client, running)["state"] == "CANCELLED"
    assert ended(ws.client, queued)["started_at"] is None
    conflict = assert_problem(ws.client.post(f"/agent/runs/{queued}/cancel"), 409, "CONFLICT")
    assert "ended" in conflict["detail"]
    assert_problem(ws.client.post("/agent/runs/run_nope/cancel"), 404, "NOT_FOUND")
    with_body = ws.client.post(f"/agent/runs/{running}/cancel", json={"reason": "x"})
    assert_problem(with_body, 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=ten",
        "created_after=yesterday",
        "created_before=2026-13-01T00:00:00Z",
        "created_after=2026-01-01T00:00:00",
        "state=RUNNING",
        "source=EMAIL",
        "sort_by=seq",
        "sort_order=up",
        "cursor=not-a-cursor",
        "colour=blue",
    ],
)
def test_bad_list_queries_are_400_problems(ws: Ws, query: str) -> None:
    assert_problem(ws.client.get(f"/agent/runs?{query}"), 400, "BAD_REQUEST")


def test_errors_are_problem_json(ws: Ws, server: Server) -> None:
    agent(ws)
    with bare_client(server) as anon:
        assert_problem(anon.get("/agent/runs"), 401, "UNAUTHORIZED")
        assert_problem(anon.post("/api/v1/agent/run", json={"prompt": "x"}), 401, "UNAUTHORIZED")
    with server.client("sk_user_wrong") as wrong:
        assert_problem(wrong.get("/agent/runs/run_x"), 401, "UNAUTHORIZED")
    assert_problem(ws.client.get("/agent/runs/run_nope"), 404, "NOT_FOUND")
    for body in (
        {"prompt": "x", "colour": "blue"},
        {"prompt": ""},
        {"title": "no prompt"},
        {"prompt": "x", "team": "yes"},
        {"prompt": "x", "config": {"name": None, "temperature": 1}},
    ):
        assert_problem(ws.client.post("/agent/run", json=body), 400, "BAD_REQUEST")
    not_json = ws.client.post(
        "/agent/run", content=b"{", headers={"content-type": "application/json"}
    )
    assert_problem(not_json, 400, "BAD_REQUEST")
    model = ws.client.post("/agent/run", json={"prompt": "x", "config": {"model_id": "gpt-x"}})
    assert_problem(model, 400, "BAD_REQUEST")
    slug = agent(ws)
    issued = ws.client.post(f"/v1/workspaces/{ws.slug}/agents/{slug}/keys", json={"name": "rt"})
    with server.client(issued.json()["secret"]) as runtime_key:
        forbidden = runtime_key.post("/agent/run", json={"prompt": "x"})
        assert_problem(forbidden, 403, "FORBIDDEN")
    assert_problem(ws.client.delete("/agent/runs"), 405, "METHOD_NOT_ALLOWED")


def test_cli_and_web_app_runs_are_local_on_warp(ws: Ws) -> None:
    slug = agent(ws)
    agent_id = ws.client.get(f"/v1/workspaces/{ws.slug}/agents/{slug}").json()["agent"]["id"]
    made = {}
    for source in ("CLI", "WEB_APP", "API"):
        resp = ws.client.post(
            f"/v1/agents/{agent_id}/runs",
            json={"input": "echo hi"},
            headers={"X-Runyard-Source": source.lower()},
        )
        assert resp.status_code == 202, resp.text
        made[source] = resp.json()["runId"]
        native = ws.client.get(f"/v1/agents/{agent_id}/runs/{made[source]}").json()["run"]
        assert native["source"] == source
    assert detail(ws.client, made["CLI"])["source"] == "LOCAL"
    assert detail(ws.client, made["WEB_APP"])["source"] == "LOCAL"
    assert set(ids(ws.client, source="LOCAL", name=slug)) == {made["CLI"], made["WEB_APP"]}
    assert ids(ws.client, source="API", name=slug) == [made["API"]]
    assert ids(ws.client, source="SLACK", name=slug) == []
    for bad in ("SCHEDULED_AGENT", "EMAIL"):
        resp = ws.client.post(
            f"/v1/agents/{agent_id}/runs",
            json={"input": "echo hi"},
            headers={"X-Runyard-Source": bad},
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["data"]["field"] == "X-Runyard-Source"


def test_session_link_opens_the_runs_canvas(ws: Ws) -> None:
    agent(ws, slug="default")
    run_id = run(ws.client, "echo linked")
    item = ended(ws.client, run_id)
    link = item["session_link"]
    assert link.endswith(f"/v1/canvas/{run_id}/dag")
    resp = ws.client.get(link)
    assert resp.status_code == 200, resp.text
    dag = resp.json()["data"]
    assert dag["canvas_id"] == run_id and dag["status"] == "completed"
    assert [n["type"] for n in dag["nodes"]] == ["input", "output"]
