"""Schedules over HTTP on a started ``runyard up``: firing, pause/resume, spawn errors,
every 400 and 404, tenancy, and the ``runyard schedules`` CLI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.acceptance.test_api_support import (
    admin,
    assert_envelope,
    assert_ts,
    create_agent,
    poll,
    send_json,
    unique,
    wait_ready,
)
from tests.acceptance.test_cli import cli, ok, ok_json
from tests.conftest import Server

DOC_KEYS = {
    "id",
    "agentId",
    "name",
    "cron",
    "timezone",
    "prompt",
    "enabled",
    "paused",
    "harness",
    "timeoutSeconds",
    "history",
    "lastRunId",
    "lastSpawnError",
    "createdAt",
    "updatedAt",
}
EVERY_SECOND = "* * * * * *"


def _base(slug: str, ws: str = "default") -> str:
    return f"/v1/workspaces/{ws}/agents/{slug}/schedules"


def _ready_agent(c: httpx.Client, prefix: str) -> tuple[str, str]:
    doc = create_agent(c, unique(prefix), runtimePolicy={"maxConcurrentRuns": 4})
    slug = doc["agent"]["slug"]
    wait_ready(c, slug)
    return slug, doc["agent"]["id"]


def _create(c: httpx.Client, slug: str, **body: Any) -> dict[str, Any]:
    resp = c.post(_base(slug), json={"name": "tick", "cron": EVERY_SECOND, **body})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _get(c: httpx.Client, slug: str, sid: str) -> dict[str, Any]:
    resp = c.get(f"{_base(slug)}/{sid}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _scheduled_runs(c: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    resp = c.get(f"/v1/agents/{agent_id}/runs", params={"limit": 100})
    assert resp.status_code == 200, resp.text
    return [r for r in resp.json()["runs"] if r["source"] == "SCHEDULED_AGENT"]


def _fires(c: httpx.Client, slug: str, sid: str, times: int) -> None:
    """Wait until the schedule has fired ``times`` more runs (scheduler rounds passed)."""
    for _ in range(times):
        last = _get(c, slug, sid)["lastRunId"]
        poll(lambda: _get(c, slug, sid), lambda d: d["lastRunId"] not in (None, last))


def test_a_schedule_fires_runs_and_pause_stops_it(server: Server) -> None:
    with server.client() as c:
        slug, agent_id = _ready_agent(c, "Sched")
        sentinel_slug, _ = _ready_agent(c, "Sentinel")
        made = _create(c, slug, prompt="echo scheduled", timezone="Europe/Paris")
        assert set(made) == DOC_KEYS, made
        assert made["prompt"] == "echo scheduled" and made["agentId"] == agent_id
        assert (made["enabled"], made["paused"], made["lastRunId"]) == (True, False, None)
        assert made["history"]["lastRan"] is None
        assert_ts(made["history"]["nextRun"])
        sid = made["id"]
        runs = poll(lambda: _scheduled_runs(c, agent_id), lambda rs: len(rs) >= 1)
        fired = poll(lambda: _get(c, slug, sid), lambda d: d["lastRunId"] is not None)
        assert fired["lastSpawnError"] is None
        assert_ts(fired["history"]["lastRan"])
        assert fired["lastRunId"] in {r["id"] for r in _scheduled_runs(c, agent_id)}
        done = poll(
            lambda: c.get(f"/v1/agents/{agent_id}/runs/{runs[-1]['id']}").json()["run"],
            lambda r: r["status"] not in ("queued", "claimed", "running"),
        )
        assert done["source"] == "SCHEDULED_AGENT" and done["status"] == "completed", done
        assert "scheduled" in done["output"]

        paused = c.post(f"{_base(slug)}/{sid}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True and paused.json()["history"]["nextRun"] is None
        # A sentinel schedule firing proves scheduler rounds passed after the pause.
        sentinel = _create(c, sentinel_slug, prompt="true")["id"]
        _fires(c, sentinel_slug, sentinel, 2)
        frozen = _get(c, slug, sid)
        count = len(_scheduled_runs(c, agent_id))
        _fires(c, sentinel_slug, sentinel, 2)
        assert _get(c, slug, sid)["lastRunId"] == frozen["lastRunId"]
        assert len(_scheduled_runs(c, agent_id)) == count

        resumed = c.post(f"{_base(slug)}/{sid}/resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["paused"] is False
        assert_ts(resumed.json()["history"]["nextRun"])
        poll(lambda: _get(c, slug, sid), lambda d: d["lastRunId"] != frozen["lastRunId"])

        for target_slug, target in ((slug, sid), (sentinel_slug, sentinel)):
            gone = c.delete(f"{_base(target_slug)}/{target}")
            assert gone.status_code == 200 and gone.json()["deleted"] is True
            assert_envelope(c.get(f"{_base(target_slug)}/{target}"), 404, "NOT_FOUND")


def test_spawn_errors_are_recorded_and_the_schedule_keeps_going(server: Server) -> None:
    with server.client() as c:
        slug, _ = _ready_agent(c, "SchedErr")
        sid = _create(c, slug, prompt="echo x", harness="codex")["id"]
        failing = poll(lambda: _get(c, slug, sid), lambda d: d["lastSpawnError"] is not None)
        assert "BAD_REQUEST" in failing["lastSpawnError"]
        assert failing["lastRunId"] is None and failing["history"]["nextRun"] is not None
        fixed = send_json(c, "PATCH", f"{_base(slug)}/{sid}", {"harness": None})
        assert fixed.status_code == 200, fixed.text
        ok_doc = poll(lambda: _get(c, slug, sid), lambda d: d["lastRunId"] is not None)
        assert ok_doc["lastSpawnError"] is None
        c.delete(f"{_base(slug)}/{sid}")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "n", "cron": "bogus", "prompt": "p"}, "cron"),
        ({"name": "n", "cron": "0 0 30 2 *", "prompt": "p"}, "cron"),
        ({"name": "n", "cron": "* * * * *", "prompt": "p", "timezone": "Nowhere/City"}, "timezone"),
        ({"name": "n", "cron": "* * * * *", "prompt": "p", "colour": "red"}, "colour"),
        ({"name": "n", "cron": "* * * * *"}, "prompt"),
        ({"name": "n", "cron": "* * * * *", "prompt": "p", "enabled": "yes"}, "enabled"),
        ({"name": "n", "cron": "* * * * *", "prompt": "p", "timeoutSeconds": 0}, "timeoutSeconds"),
    ],
)
def test_invalid_bodies_are_clear_400s(server: Server, body: dict[str, Any], field: str) -> None:
    with server.client() as c:
        slug = create_agent(c, unique("Sched400"))["agent"]["slug"]
        err = assert_envelope(send_json(c, "POST", _base(slug), body), 400, "BAD_REQUEST")
        assert field in err["message"], err


def test_patch_crud_404s_and_tenancy(server: Server) -> None:
    with server.client() as c:
        slug = create_agent(c, unique("SchedCrud"))["agent"]["slug"]
        made = _create(c, slug, cron="0 9 * * 1-5", prompt="standup", enabled=False)
        sid = made["id"]
        assert made["history"]["nextRun"] is None and made["timezone"] == "UTC"
        patched = send_json(c, "PATCH", f"{_base(slug)}/{sid}", {"enabled": True, "name": "x"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["name"] == "x" and patched.json()["history"]["nextRun"]
        for bad in ({"name": None}, {"cron": "nope"}, {"unknown": 1}, {"timezone": "X/Y"}):
            assert_envelope(send_json(c, "PATCH", f"{_base(slug)}/{sid}", bad), 400, "BAD_REQUEST")
        assert [s["id"] for s in c.get(_base(slug)).json()["schedules"]] == [sid]
        assert_envelope(c.get(f"{_base(slug)}/sched_missing"), 404, "NOT_FOUND")
        assert_envelope(c.post(f"{_base(slug)}/sched_missing/pause"), 404, "NOT_FOUND")
        assert_envelope(c.get(_base("no-such-agent")), 404, "NOT_FOUND")
        other_slug = create_agent(c, unique("SchedOther"))["agent"]["slug"]
        assert_envelope(c.get(f"{_base(other_slug)}/{sid}"), 404, "NOT_FOUND")
    other = admin(server, "create-workspace", unique("schedws"))
    ws = str(other["workspace"])
    with server.client(str(other["workspaceKey"])) as o:
        assert_envelope(o.get(_base(slug)), 404, "NOT_FOUND")
        assert_envelope(o.get(_base(slug, ws)), 404, "NOT_FOUND")
        mine = create_agent(o, unique("Theirs"), ws=ws)["agent"]["slug"]
        for method in ("GET", "PATCH", "DELETE"):
            resp = send_json(o, method, f"{_base(mine, ws)}/{sid}", {})
            assert_envelope(resp, 404, "NOT_FOUND")
        assert_envelope(o.post(f"{_base(mine, ws)}/{sid}/resume"), 404, "NOT_FOUND")
    with server.client() as c:
        assert _get(c, slug, sid)["name"] == "x"


def test_cli_schedules(server: Server) -> None:
    with server.client() as c:
        slug = create_agent(c, unique("SchedCli"))["agent"]["slug"]
    made = ok_json(
        cli(server, "schedules", "create", slug, "0 3 * * *", "echo hi", "--timezone",
            "Asia/Tokyo", "--json")
    )  # fmt: skip
    sid = made["id"]
    assert made["timezone"] == "Asia/Tokyo" and made["name"] == "0 3 * * *"
    assert sid in ok(cli(server, "schedules", "list", slug))
    assert ok_json(cli(server, "schedules", "pause", slug, sid, "--json"))["paused"] is True
    assert ok_json(cli(server, "schedules", "resume", slug, sid, "--json"))["paused"] is False
    assert ok_json(cli(server, "schedules", "delete", slug, sid, "--json"))["deleted"] is True
    assert ok_json(cli(server, "schedules", "list", slug, "--json")) == {"schedules": []}
