"""Webhooks end to end on a started ``runyard up``: a real receiver thread checks every
signature; runs send run.started then run.completed, or run.failed; a 500 is retried;
secrets are shown once and rotate; loopback targets are refused unless the operator
allowed them; every 400, 403 and 404; the SDK and the ``runyard webhooks`` CLI.

The module's own server allows private targets (the receiver is on 127.0.0.1) and
retries after a fraction of a second; the session's shared server keeps the defaults.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runyard.domain.webhooks import EVENT_TYPES, verify
from runyard.sdk import Client
from tests.acceptance.test_api_support import (
    admin,
    assert_client_error,
    assert_envelope,
    assert_ts,
    create_agent,
    issue_key,
    poll,
    send_json,
    unique,
    wait_ready,
)
from tests.acceptance.test_cli import cli, ok, ok_json
from tests.conftest import Server, start_up
from tests.fakes.webhook_receiver import Received, Receiver

BASE = "/v1/workspaces/default/webhooks"
DOC_KEYS = {"id", "url", "events", "description", "enabled", "createdAt", "updatedAt"}
DELIVERY_KEYS = {
    "id",
    "webhookId",
    "runId",
    "type",
    "status",
    "attempts",
    "nextAttemptAt",
    "responseStatus",
    "lastError",
    "createdAt",
    "deliveredAt",
    "payload",
}


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A ``runyard up`` that may send to 127.0.0.1 and retries quickly."""
    env = {
        "RUNYARD_WEBHOOK_ALLOW_PRIVATE": "1",
        "RUNYARD_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "RUNYARD_POLL_SECONDS": "0.2",
    }
    srv = start_up(tmp_path_factory.mktemp("webhooks") / "data", env)
    yield srv
    srv.stop()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def _create(c: httpx.Client, url: str, **body: Any) -> tuple[dict[str, Any], str]:
    resp = c.post(BASE, json={"url": url, **body})
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert set(doc) == {"webhook", "secret"}
    assert set(doc["webhook"]) == DOC_KEYS, doc
    return doc["webhook"], doc["secret"]


def _ready_agent(c: httpx.Client) -> str:
    doc = create_agent(c, unique("Hooked"), runtimePolicy={"maxConcurrentRuns": 4})
    wait_ready(c, doc["agent"]["slug"])
    return str(doc["agent"]["id"])


def _for_run(run_id: str) -> Any:
    return lambda r: json.loads(r.body)["data"]["run"]["id"] == run_id


def _deliveries(c: httpx.Client, wid: str, **params: Any) -> dict[str, Any]:
    resp = c.get(f"{BASE}/{wid}/deliveries", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _event(r: Received) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(r.body)
    assert r.verified, r.headers
    assert r.headers["runyard-event"] == doc["type"]
    assert r.headers["runyard-delivery"] == doc["id"]
    assert r.headers["content-type"] == "application/json"
    assert r.headers["user-agent"].startswith("runyard-webhooks/")
    return doc


def test_a_run_sends_started_then_completed(hooks: Server, rx: Receiver) -> None:
    with hooks.client() as c:
        agent_id = _ready_agent(c)
        hook, secret = _create(c, rx.url, description="ops")
        rx.secret = secret
        assert secret.startswith("whsec_")
        assert hook["events"] == ["run.completed", "run.failed", "run.started"]
        assert hook["enabled"] is True and hook["description"] == "ops"
        assert_ts(hook["createdAt"])
        for resp in (c.get(BASE), c.get(f"{BASE}/{hook['id']}")):
            assert resp.status_code == 200 and secret not in resp.text
        run = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "echo hello-webhooks"})
        assert run.status_code == 200, run.text
        run_id = run.json()["runId"]
        got = rx.wait_for(2, _for_run(run_id))
        events = [_event(r) for r in got]
        assert [e["type"] for e in events] == ["run.started", "run.completed"]
        started, completed = (e["data"]["run"] for e in events)
        assert set(completed) == {
            "id",
            "agentId",
            "status",
            "source",
            "createdAt",
            "startedAt",
            "completedAt",
            "error",
        }
        assert (started["status"], started["completedAt"]) == ("running", None)
        assert completed["status"] == "completed" and completed["agentId"] == agent_id
        assert completed["error"] is None and completed["source"] == "API"
        for r in got:  # neither the prompt nor the output leaves runyard
            assert b"echo" not in r.body and b"hello-webhooks" not in r.body
        listing = poll(
            lambda: _deliveries(c, hook["id"]),
            lambda d: [x["status"] for x in d["deliveries"]] == ["delivered", "delivered"],
        )
        assert listing["hasMore"] is False and listing["nextCursor"] is None
        newest = listing["deliveries"][0]
        assert set(newest) == DELIVERY_KEYS
        assert (newest["type"], newest["runId"], newest["attempts"]) == ("run.completed", run_id, 1)
        assert newest["responseStatus"] == 200 and newest["lastError"] is None
        assert_ts(newest["deliveredAt"])
        assert newest["payload"] == events[1]
        assert c.delete(f"{BASE}/{hook['id']}").status_code == 204


def test_a_failing_run_sends_run_failed(hooks: Server, rx: Receiver) -> None:
    with hooks.client() as c:
        agent_id = _ready_agent(c)
        hook, rx.secret = _create(c, rx.url, events=["run.failed"])
        resp = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "exit 3"})
        err = assert_envelope(resp, 502, "RUN_FAILED")
        [got] = rx.wait_for(1, _for_run(err["data"]["runId"]))
        doc = _event(got)
        assert doc["type"] == "run.failed"
        run = doc["data"]["run"]
        assert run["status"] == "failed"
        assert set(run["error"]) == {"code", "message", "retryable"}
        assert (run["error"]["code"], run["error"]["retryable"]) == ("harness_failed", False)
        assert run["completedAt"] is not None
        assert c.delete(f"{BASE}/{hook['id']}").status_code == 204


def test_a_500_is_retried_and_then_delivered(hooks: Server, rx: Receiver) -> None:
    rx.script(500)
    with hooks.client() as c:
        agent_id = _ready_agent(c)
        hook, rx.secret = _create(c, rx.url, events=["run.completed"])
        run = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "true"})
        assert run.status_code == 200, run.text
        first, second = rx.wait_for(2)
        assert (first.answered, second.answered) == (500, 200)
        assert first.body == second.body and first.verified and second.verified
        assert first.headers["runyard-delivery"] == second.headers["runyard-delivery"]
        done = poll(
            lambda: _deliveries(c, hook["id"])["deliveries"][0],
            lambda d: d["status"] == "delivered",
        )
        assert (done["attempts"], done["responseStatus"]) == (2, 200)
        assert c.delete(f"{BASE}/{hook['id']}").status_code == 204


def test_rotate_secret_signs_later_deliveries_with_the_new_one(hooks: Server, rx: Receiver) -> None:
    with hooks.client() as c:
        agent_id = _ready_agent(c)
        hook, old = _create(c, rx.url, events=["run.completed"])
        resp = c.post(f"{BASE}/{hook['id']}/rotate-secret")
        assert resp.status_code == 200, resp.text
        new = resp.json()["secret"]
        assert new.startswith("whsec_") and new != old
        assert resp.json()["webhook"]["id"] == hook["id"]
        rx.secret = new
        assert c.post(f"/v1/agents/{agent_id}/exec", json={"input": "true"}).status_code == 200
        [got] = rx.wait_for(1)
        assert got.verified
        assert not verify(old, got.headers["runyard-signature"], got.body, time.time())
        assert c.delete(f"{BASE}/{hook['id']}").status_code == 204


def test_crud_paging_and_disabling(hooks: Server, rx: Receiver) -> None:
    with hooks.client() as c:
        agent_id = _ready_agent(c)
        hook, rx.secret = _create(c, rx.url, events=["run.started", "run.completed"])
        wid = hook["id"]
        assert wid in [w["id"] for w in c.get(BASE).json()["webhooks"]]
        assert c.post(f"/v1/agents/{agent_id}/exec", json={"input": "true"}).status_code == 200
        rx.wait_for(2)
        first = _deliveries(c, wid, limit=1)
        assert first["hasMore"] is True and len(first["deliveries"]) == 1
        rest = _deliveries(c, wid, limit=1, cursor=first["nextCursor"])
        assert rest["hasMore"] is False
        types = [d["type"] for d in first["deliveries"] + rest["deliveries"]]
        assert types == ["run.completed", "run.started"]
        assert_envelope(
            c.get(f"{BASE}/{wid}/deliveries", params={"cursor": "nope"}), 400, "BAD_REQUEST"
        )
        assert_envelope(c.get(f"{BASE}/{wid}/deliveries", params={"limit": 0}), 400, "BAD_REQUEST")

        patched = send_json(c, "PATCH", f"{BASE}/{wid}", {"enabled": False, "description": "off"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["webhook"]["enabled"] is False
        assert patched.json()["webhook"]["description"] == "off"
        assert c.post(f"/v1/agents/{agent_id}/exec", json={"input": "true"}).status_code == 200
        # A disabled webhook gets no deliveries: still the two of the first run.
        assert len(_deliveries(c, wid)["deliveries"]) == 2
        events = send_json(c, "PATCH", f"{BASE}/{wid}", {"events": ["run.cancelled"]})
        assert events.json()["webhook"]["events"] == ["run.cancelled"]

        assert c.delete(f"{BASE}/{wid}").status_code == 204
        assert_envelope(c.get(f"{BASE}/{wid}"), 404, "NOT_FOUND")
        assert_envelope(c.get(f"{BASE}/{wid}/deliveries"), 404, "NOT_FOUND")
        assert_envelope(c.delete(f"{BASE}/{wid}"), 404, "NOT_FOUND")
        assert_envelope(c.post(f"{BASE}/{wid}/rotate-secret"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": "https://example.com/" + "a" * 2100}, "url"),
        ({"url": "https://93.184.216.34/", "events": []}, "events"),
        ({"url": "https://93.184.216.34/", "events": ["run.exploded"]}, "events"),
        ({"url": "https://93.184.216.34/", "secret": "mine"}, "secret"),
        ({"url": "https://93.184.216.34/", "enabled": "yes"}, "enabled"),
        ({"events": ["run.failed"]}, "url"),
        ({"url": 5}, "url"),
    ],
)
def test_invalid_bodies_are_clear_400s(server: Server, body: dict[str, Any], field: str) -> None:
    with server.client() as c:
        err = assert_envelope(send_json(c, "POST", BASE, body), 400, "BAD_REQUEST")
        assert field in err["message"], err


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_private_targets_are_refused_unless_allowed(server: Server, url: str) -> None:
    with server.client() as c:
        err = assert_envelope(c.post(BASE, json={"url": url}), 400, "BAD_REQUEST")
        assert err["data"]["reason"] == "webhook_target_private"
        assert err["data"]["field"] == "url"


def test_patching_to_a_private_target_is_refused_and_keys_are_scoped(server: Server) -> None:
    with server.client() as c:
        # A public IP literal needs no DNS; disabled, so nothing is ever sent to it.
        hook, _ = _create(c, "https://93.184.216.34/hook", enabled=False)
        wid = hook["id"]
        err = assert_envelope(
            send_json(c, "PATCH", f"{BASE}/{wid}", {"url": "http://127.0.0.1/x"}),
            400,
            "BAD_REQUEST",
        )
        assert err["data"]["reason"] == "webhook_target_private"
        for bad in ({"url": None}, {"enabled": None}, {"unknown": 1}, {"events": []}):
            assert_envelope(send_json(c, "PATCH", f"{BASE}/{wid}", bad), 400, "BAD_REQUEST")
        assert c.get(f"{BASE}/{wid}").json()["webhook"]["url"] == "https://93.184.216.34/hook"
        slug = create_agent(c, unique("HookKeys"))["agent"]["slug"]
        _, agent_secret = issue_key(c, slug)
    with server.client(agent_secret) as a:
        assert_envelope(a.get(BASE), 403, "FORBIDDEN")
        assert_envelope(a.post(BASE, json={"url": "https://93.184.216.34/"}), 403, "FORBIDDEN")
    personal = str(admin(server, "create-key", "default", "--kind", "user")["key"])
    with server.client(personal) as p:
        assert wid in [w["id"] for w in p.get(BASE).json()["webhooks"]]
    other = admin(server, "create-workspace", unique("hookws"))
    ws = str(other["workspace"])
    with server.client(str(other["workspaceKey"])) as o:
        assert_envelope(o.get(BASE), 404, "NOT_FOUND")
        theirs = f"/v1/workspaces/{ws}/webhooks"
        assert o.get(theirs).json() == {"webhooks": []}
        for method in ("GET", "PATCH", "DELETE"):
            assert_envelope(send_json(o, method, f"{theirs}/{wid}", {}), 404, "NOT_FOUND")
        assert_envelope(o.get(f"{theirs}/{wid}/deliveries"), 404, "NOT_FOUND")
    with server.client() as c:
        assert c.delete(f"{BASE}/{wid}").status_code == 204


def test_sdk_webhooks(hooks: Server, rx: Receiver) -> None:
    with hooks.client() as c:
        agent_id = _ready_agent(c)
    with Client(hooks.base_url, hooks.workspace_key) as sdk:
        made = sdk.create_webhook(rx.url, events=["run.completed"], description="sdk")
        wid = made["webhook"]["id"]
        rx.secret = made["secret"]
        assert sdk.get_webhook(wid)["webhook"]["description"] == "sdk"
        assert wid in [w["id"] for w in sdk.list_webhooks()["webhooks"]]
        updated = sdk.update_webhook(wid, events=["run.completed", "run.started"])
        assert updated["webhook"]["events"] == ["run.completed", "run.started"]
        rotated = sdk.rotate_webhook_secret(wid)
        rx.secret = rotated["secret"]
        sdk.exec(agent_id, "true")
        rx.wait_for(2)
        page = poll(
            lambda: sdk.list_webhook_deliveries(wid, limit=1),
            lambda d: d["deliveries"][0]["status"] == "delivered",
        )
        assert page["hasMore"] is True and all(r.verified for r in rx.requests)
        assert sdk.delete_webhook(wid) == {"deleted": True, "id": wid}


def test_cli_webhooks(hooks: Server, rx: Receiver) -> None:
    made = ok_json(cli(hooks, "webhooks", "create", rx.url, "--event", "run.failed", "--json"))
    wid = made["webhook"]["id"]
    assert made["webhook"]["events"] == ["run.failed"]
    human = cli(hooks, "webhooks", "create", rx.url, "--description", "cli")
    secret = ok(human).strip()
    assert secret.startswith("whsec_") and "shown only now" in human.stderr
    assert wid in ok(cli(hooks, "webhooks", "list"))
    assert ok_json(cli(hooks, "webhooks", "show", wid, "--json"))["webhook"]["id"] == wid
    updated = ok_json(
        cli(hooks, "webhooks", "update", wid, "--disable", "--description", "quiet", "--json")
    )
    assert updated["webhook"]["enabled"] is False and updated["webhook"]["description"] == "quiet"
    rotated = ok(cli(hooks, "webhooks", "rotate-secret", wid)).strip()
    assert rotated.startswith("whsec_")
    assert ok_json(cli(hooks, "webhooks", "deliveries", wid, "--json"))["deliveries"] == []
    assert "TYPE" in ok(cli(hooks, "webhooks", "deliveries", wid))
    assert ok_json(cli(hooks, "webhooks", "delete", wid, "--json")) == {"deleted": True, "id": wid}
    missing = cli(hooks, "webhooks", "show", wid)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    others = ok_json(cli(hooks, "webhooks", "list", "--json"))["webhooks"]
    for w in others:
        ok(cli(hooks, "webhooks", "delete", w["id"]))


_CHARS = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from(":/@#[]%"))
_TEXT = st.text(alphabet=_CHARS, max_size=40)
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _TEXT)
_JSON = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=12,
)
_URLS = st.one_of(
    _TEXT,
    st.builds(lambda t: f"https://93.184.216.34/{t}", _TEXT),
    st.builds(lambda t: f"http://{t}/hook", _TEXT),
)
_SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "url": st.one_of(_URLS, _JSON),
        "events": st.one_of(st.lists(st.sampled_from([*EVENT_TYPES, "x"]), max_size=5), _JSON),
        "description": st.one_of(_TEXT, _JSON),
        "enabled": st.one_of(st.booleans(), _JSON),
    },
)
_FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def fuzz_hook(server: Server) -> Iterator[str]:
    """A disabled webhook for the fuzzed PATCHes (never sent to)."""
    with server.client() as c:
        hook, _ = _create(c, "https://93.184.216.34/fuzz", enabled=False)
        yield str(hook["id"])
        c.delete(f"{BASE}/{hook['id']}")


@_FUZZ
@given(body=st.one_of(_JSON, _SHAPED))
def test_fuzzed_bodies_never_make_a_5xx(server: Server, fuzz_hook: str, body: Any) -> None:
    with server.client() as c:
        made = send_json(c, "POST", BASE, body)
        assert made.status_code < 500, made.text
        if made.status_code == 201:
            assert c.delete(f"{BASE}/{made.json()['webhook']['id']}").status_code == 204
        else:
            assert_client_error(made)
        patched = send_json(c, "PATCH", f"{BASE}/{fuzz_hook}", body)
        assert patched.status_code < 500, patched.text
        if patched.status_code != 200:
            assert_client_error(patched)
        elif patched.json()["webhook"]["enabled"]:
            send_json(c, "PATCH", f"{BASE}/{fuzz_hook}", {"enabled": False})
