"""Authentication and tenancy acceptance over real HTTP.

Which key opens which door: no key, a malformed ``Authorization`` header,
an unknown or revoked key are all 401 in the native envelope; both
``Authorization: Bearer`` and ``X-API-KEY`` work; an agent runtime key is 403
on the control plane and 404 on any other agent; a personal key (issued by
``runyard admin create-key``) works on the control plane and is 403 on the
runtime API; and a second workspace (``runyard admin create-workspace``)
never sees or touches the first one's agents, runs or keys: always 404,
never 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.test_api_support import (
    AGENTS,
    RuntimeAgent,
    admin,
    assert_envelope,
    bare_client,
    create_agent,
    issue_key,
    runtime_agent,
    unique,
)
from tests.conftest import Server


@pytest.fixture(scope="module")
def victim(server: Server) -> Iterator[tuple[RuntimeAgent, str]]:
    """An agent of workspace ``default`` with one finished run: (agent, run id)."""
    made = runtime_agent(server)
    with made.client:
        resp = made.exec(input="echo private")
        assert resp.status_code == 200, resp.text
        yield made, resp.json()["runId"]


@pytest.fixture(scope="module")
def personal_key(server: Server) -> str:
    issued = admin(server, "create-key", "default", "--kind", "user", "--name", "cli")
    assert issued["kind"] == "user"
    assert issued["key"].startswith("sk_user_")
    return str(issued["key"])


@pytest.fixture(scope="module")
def other(server: Server) -> tuple[str, str]:
    """A second workspace: (slug, its workspace key)."""
    slug = unique("other")
    made = admin(server, "create-workspace", slug)
    assert made["workspace"] == slug
    assert made["workspaceKey"].startswith("sk_workspace_")
    return slug, str(made["workspaceKey"])


def _runtime_paths(agent: RuntimeAgent, run_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"{agent.base}/status", None),
        ("POST", f"{agent.base}/exec", {"input": "echo hijacked"}),
        ("GET", f"{agent.base}/runs", None),
        ("GET", f"{agent.base}/runs/{run_id}", None),
    ]


def _control_paths(slug: str, key_id: str, ws: str = "default") -> list[tuple[str, str, Any]]:
    base = f"/v1/workspaces/{ws}/agents"
    return [
        ("GET", base, None),
        ("POST", base, {"name": unique("Intruder")}),
        ("GET", f"{base}/{slug}", None),
        ("PATCH", f"{base}/{slug}", {"name": unique("Hijacked")}),
        ("PATCH", f"{base}/{slug}/harnesses", {"harnessTargets": []}),
        ("DELETE", f"{base}/{slug}", {"confirmationSlug": slug}),
        ("GET", f"{base}/{slug}/keys", None),
        ("POST", f"{base}/{slug}/keys", {"name": "stolen"}),
        ("DELETE", f"{base}/{slug}/keys/{key_id}", None),
    ]


def _call(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    if body is None:
        return client.request(method, path)
    return client.request(method, path, json=body)


UNAUTHENTICATED = [
    {},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer  \t sk"},
    {"Authorization": "Token sk_workspace_abc"},
    {"Authorization": "sk_workspace_abc"},
    {"Authorization": "Bearer sk_workspace_" + "0" * 40},
    {"Authorization": "Bearer not-a-key"},
    {"Authorization": "Bearer sk_" + "a" * 300},
    {"X-API-KEY": ""},
    {"X-API-KEY": "sk_agent_" + "0" * 40},
]


@pytest.mark.parametrize("headers", UNAUTHENTICATED)
def test_missing_malformed_or_unknown_keys_are_401(
    server: Server, victim: tuple[RuntimeAgent, str], headers: dict[str, str]
) -> None:
    agent, run_id = victim
    with bare_client(server, headers) as c:
        for method, path, body in [
            *_runtime_paths(agent, run_id),
            *_control_paths(agent.slug, agent.key_id),
        ]:
            resp = _call(c, method, path, body)
            err = assert_envelope(resp, 401, "UNAUTHORIZED")
            assert err["data"] == {"retryable": False}, (method, path)


def test_revoked_key_is_401(server: Server) -> None:
    agent = runtime_agent(server)
    with agent.client, server.client() as ws:
        assert agent.client.get(f"{agent.base}/status").status_code == 200
        revoked = ws.delete(f"{AGENTS}/{agent.slug}/keys/{agent.key_id}")
        assert revoked.status_code == 200, revoked.text
        assert_envelope(agent.client.get(f"{agent.base}/status"), 401, "UNAUTHORIZED")
        assert_envelope(agent.exec(input="true"), 401, "UNAUTHORIZED")


def test_bearer_and_x_api_key_are_both_accepted(server: Server) -> None:
    agent = runtime_agent(server)
    agent.client.close()
    for headers in (
        {"Authorization": f"Bearer {server.workspace_key}"},
        {"Authorization": f"bearer {server.workspace_key}"},
        {"X-API-KEY": server.workspace_key},
        {"x-api-key": server.workspace_key},
    ):
        with bare_client(server, headers) as c:
            assert c.get(AGENTS).status_code == 200, headers
            assert c.get(f"{agent.base}/status").status_code == 200, headers
    for headers in ({"Authorization": f"Bearer {agent.secret}"}, {"X-API-KEY": agent.secret}):
        with bare_client(server, headers) as c:
            assert c.get(f"{agent.base}/status").status_code == 200, headers
            resp = c.post(f"{agent.base}/exec", json={"input": "echo via-header"})
            assert resp.json()["output"] == {"text": "via-header\n"}


def test_agent_key_is_403_on_the_control_plane(
    server: Server, victim: tuple[RuntimeAgent, str]
) -> None:
    agent, _ = victim
    for method, path, body in [
        *_control_paths(agent.slug, agent.key_id),
        ("GET", "/v1/workspaces/no-such-workspace/agents", None),
    ]:
        err = assert_envelope(_call(agent.client, method, path, body), 403, "FORBIDDEN")
        assert "runtime" in err["message"]
    with server.client() as ws:
        assert ws.get(f"{AGENTS}/{agent.slug}").status_code == 200  # untouched


def test_agent_key_is_404_on_another_agent(
    server: Server, victim: tuple[RuntimeAgent, str]
) -> None:
    agent, run_id = victim
    stranger = runtime_agent(server)
    with stranger.client, server.client() as ws:
        before = ws.get(f"{agent.base}/runs").json()
        for method, path, body in _runtime_paths(agent, run_id):
            assert_envelope(_call(stranger.client, method, path, body), 404, "NOT_FOUND")
        assert ws.get(f"{agent.base}/runs").json() == before  # the stranger added no run


def test_personal_key_works_on_control_plane_and_is_403_on_runtime(
    server: Server, victim: tuple[RuntimeAgent, str], personal_key: str
) -> None:
    agent, run_id = victim
    with server.client(personal_key) as c:
        assert c.get(AGENTS).status_code == 200
        doc = create_agent(c, unique("Personal"))
        slug = doc["agent"]["slug"]
        renamed = c.patch(f"{AGENTS}/{slug}", json={"name": unique("Personal Renamed")})
        assert renamed.status_code == 200, renamed.text
        slug = renamed.json()["agent"]["slug"]
        _, secret = issue_key(c, slug)
        assert secret.startswith("sk_agent_")
        gone = c.request("DELETE", f"{AGENTS}/{slug}", json={"confirmationSlug": slug})
        assert gone.status_code == 200, gone.text
        for method, path, body in _runtime_paths(agent, run_id):
            err = assert_envelope(_call(c, method, path, body), 403, "FORBIDDEN")
            assert "personal" in err["message"]


def test_second_workspace_sees_and_touches_nothing_of_the_first(
    server: Server, victim: tuple[RuntimeAgent, str], other: tuple[str, str]
) -> None:
    agent, run_id = victim
    other_ws, other_key = other
    with server.client(other_key) as c:
        # Through the first workspace's paths: the workspace itself is not found.
        for method, path, body in _control_paths(agent.slug, agent.key_id):
            assert_envelope(_call(c, method, path, body), 404, "NOT_FOUND")
        # Through the runtime API with its own workspace key.
        for method, path, body in _runtime_paths(agent, run_id):
            assert_envelope(_call(c, method, path, body), 404, "NOT_FOUND")
        # Through its own workspace's paths, naming the first workspace's objects.
        for method, path, body in _control_paths(agent.slug, agent.key_id, other_ws):
            resp = _call(c, method, path, body)
            if method == "GET" and path.endswith("/agents"):
                assert resp.status_code == 200
                assert agent.id not in resp.text
            elif method == "POST" and path.endswith("/agents"):
                assert resp.status_code == 201  # its own new agent, in its own workspace
            else:
                assert_envelope(resp, 404, "NOT_FOUND")
        # Its own agent and key cannot reach across either.
        own = create_agent(c, unique("Own"), ws=other_ws, slug=agent.slug)  # same slug
        assert own["agent"]["id"] != agent.id
        revoke = c.delete(f"/v1/workspaces/{other_ws}/agents/{agent.slug}/keys/{agent.key_id}")
        assert_envelope(revoke, 404, "NOT_FOUND")
        _, own_secret = issue_key(c, agent.slug, ws=other_ws)
    with server.client(own_secret) as own_runtime:
        stolen = own_runtime.get(f"/v1/agents/{own['agent']['id']}/runs/{run_id}")
        assert_envelope(stolen, 404, "NOT_FOUND")
        for method, path, body in _runtime_paths(agent, run_id):
            assert_envelope(_call(own_runtime, method, path, body), 404, "NOT_FOUND")
    # And the first workspace's agent, key and run are all intact.
    with server.client() as ws:
        still = ws.get(f"{AGENTS}/{agent.slug}")
        assert still.status_code == 200
        assert still.json()["agent"]["id"] == agent.id
        assert still.json()["agent"]["harnessTargets"][0]["harnessName"] == "shell"
        assert [r["id"] for r in ws.get(f"{agent.base}/runs").json()["runs"]] == [run_id]
    assert agent.client.get(f"{agent.base}/status").status_code == 200


def test_workspace_key_of_an_unknown_workspace_path_is_404(server: Server) -> None:
    with server.client() as c:
        body = assert_envelope(c.get("/v1/workspaces/nope-nope/agents"), 404, "NOT_FOUND")
        assert "nope-nope" in body["message"]
