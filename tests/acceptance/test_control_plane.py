"""Control-plane acceptance: ``/v1/workspaces/{ws}/agents…`` over real HTTP.

The reference document 001 is the specification: its curl examples are run
as written (on a server of their own, with workspace ``acme``), then each
rule is pinned separately: the agent document field by field, environment
``pending → ready``, rename and slugs, merge-patching policies, delete with
``confirmationSlug``, and listing with cursors. The harness rules live in
``test_api_harnesses.py``, keys in ``test_api_keys.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.test_api_support import (
    AGENTS,
    admin,
    assert_agent_doc,
    assert_envelope,
    assert_ts,
    create_agent,
    get_agent,
    issue_key,
    poll,
    unique,
    wait_ready,
)
from tests.conftest import Server, start_up

ACME = "/v1/workspaces/acme/agents"


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server of its own with workspace ``acme``, so the examples run verbatim."""
    srv = start_up(tmp_path_factory.mktemp("acme") / "data")
    try:
        key = admin(srv, "create-workspace", "acme")["workspaceKey"]
        yield srv, key
    finally:
        srv.stop()


def _curl(server: Server, key: str, method: str, path: str, body: str | None = None) -> Any:
    """One reference example: the same method, headers and raw JSON text as the curl line."""
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        return c.request(method, path, headers=headers, content=body)


def test_reference_examples_run_as_written(acme: tuple[Server, str]) -> None:
    server, key = acme
    # Create an agent.
    resp = _curl(server, key, "POST", ACME, '{ "name": "Support Agent" }')
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert_agent_doc(created)
    assert created["agent"]["name"] == "Support Agent"
    assert created["agent"]["slug"] == "support-agent"
    assert created["environment"]["status"] == "pending"  # creation queues provisioning

    # Inspect an agent: provisioning brings the environment to ready.
    def inspect() -> dict[str, Any]:
        got = _curl(server, key, "GET", f"{ACME}/support-agent")
        assert got.status_code == 200, got.text
        return dict(got.json())

    doc = poll(inspect, lambda d: d["environment"]["status"] == "ready")
    assert_agent_doc(doc)
    assert doc["agent"]["id"] == created["agent"]["id"]
    assert doc["environment"]["attention"] == "none"
    assert doc["environment"]["lastError"] is None
    assert doc["environment"]["runtimeReconciliation"] == {"status": "applied", "lastError": None}
    assert_ts(doc["environment"]["readyAt"])
    assert doc["environment"]["readyAt"] >= doc["environment"]["createdAt"]

    # Update enabled harnesses: the complete set, then reconciliation.
    targets = [
        {"harnessName": "openclaw", "enabled": True, "role": "default"},
        {"harnessName": "hermes", "enabled": True, "role": "available"},
    ]
    resp = _curl(
        server,
        key,
        "PATCH",
        f"{ACME}/support-agent/harnesses",
        """{
"harnessTargets": [
{ "harnessName": "openclaw", "enabled": true, "role": "default" },
{ "harnessName": "hermes", "enabled": true, "role": "available" }
]
}""",
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["agent"]["harnessTargets"] == targets
    assert resp.json()["environment"]["runtimeReconciliation"]["status"] == "pending"
    doc = poll(inspect, lambda d: d["environment"]["runtimeReconciliation"]["status"] == "applied")
    assert doc["agent"]["harnessTargets"] == targets

    # Rename an agent: the slug follows the name.
    resp = _curl(server, key, "PATCH", f"{ACME}/support-agent", '{ "name": "Support Agent v2" }')
    assert resp.status_code == 200, resp.text
    assert resp.json()["agent"]["slug"] == "support-agent-v2"
    assert resp.json()["agent"]["name"] == "Support Agent v2"
    assert _curl(server, key, "GET", f"{ACME}/support-agent").status_code == 404

    # Delete an agent, as written: its confirmation is the *old* slug now, so it is refused.
    example_delete = '{ "confirmationSlug": "support-agent" }'
    resp = _curl(server, key, "DELETE", f"{ACME}/support-agent-v2", example_delete)
    assert_envelope(resp, 400, "BAD_REQUEST")
    resp = _curl(
        server, key, "DELETE", f"{ACME}/support-agent-v2", '{"confirmationSlug":"support-agent-v2"}'
    )
    assert resp.status_code == 200, resp.text

    # With the slug free again, the create and delete examples work verbatim.
    assert _curl(server, key, "POST", ACME, '{ "name": "Support Agent" }').status_code == 201
    resp = _curl(server, key, "DELETE", f"{ACME}/support-agent", example_delete)
    assert resp.status_code == 200, resp.text
    assert resp.json()["deleted"] is True
    assert _curl(server, key, "GET", f"{ACME}/support-agent").status_code == 404


def test_agent_document_and_environment_lifecycle(server: Server) -> None:
    with server.client() as c:
        created = create_agent(
            c,
            unique("Lifecycle"),
            modelPolicy={"provider": "openai", "model": "gpt-5.4"},
            runtimePolicy={
                "resourceLimits": {"memoryMiB": 4096, "diskGiB": 4},
                "networkPolicy": {"mode": "allowlist", "allowList": ["PyPI.org."]},
                "storagePolicy": {"persistent": True, "sizeGb": 8},
            },
        )
        assert_agent_doc(created)
        agent, env = created["agent"], created["environment"]
        assert agent["modelPolicy"] == {"provider": "openai", "model": "gpt-5.4"}
        # A model to think with makes runyard's native agent the default harness.
        assert agent["harnessTargets"] == [
            {"harnessName": "native", "enabled": True, "role": "default"},
            {"harnessName": "shell", "enabled": True, "role": "available"},
        ]
        assert agent["capabilityBindings"] == []
        policy = agent["runtimePolicy"]
        assert policy["resourceLimits"]["memoryMiB"] == 4096
        assert policy["networkPolicy"] == {"mode": "allowlist", "allowList": ["pypi.org"]}
        assert policy["storagePolicy"] == {"persistent": True, "sizeGb": 8}
        assert agent["createdAt"] == agent["updatedAt"]
        assert env["status"] == "pending"
        assert env["readyAt"] is None

        ready = wait_ready(c, agent["slug"])
        assert_agent_doc(ready)
        assert ready["agent"] == agent  # provisioning changes the environment only
        assert ready["environment"]["createdAt"] == env["createdAt"]
        assert ready["environment"]["updatedAt"] >= env["updatedAt"]
        assert ready["environment"]["readyAt"] >= env["createdAt"]


def test_get_unknown_agent_is_404(server: Server) -> None:
    with server.client() as c:
        body = assert_envelope(c.get(f"{AGENTS}/{unique('missing')}"), 404, "NOT_FOUND")
        assert body["data"] == {"retryable": False}


def test_create_rejects_a_taken_slug_with_409(server: Server) -> None:
    name = unique("Twin")
    with server.client() as c:
        create_agent(c, name)
        assert_envelope(c.post(AGENTS, json={"name": name}), 409, "CONFLICT")


def test_name_without_ascii_needs_an_explicit_slug(server: Server) -> None:
    with server.client() as c:
        body = assert_envelope(c.post(AGENTS, json={"name": "サポート"}), 400, "BAD_REQUEST")
        assert "slug" in body["message"]
        slug = unique("support")
        doc = create_agent(c, "サポート", slug=slug)
        assert doc["agent"]["name"] == "サポート"
        assert doc["agent"]["slug"] == slug


def test_rename_changes_the_slug_and_frees_the_old_one(server: Server) -> None:
    with server.client() as c:
        before = create_agent(c)["agent"]
        new_name = unique("Renamed Agent")
        resp = c.patch(f"{AGENTS}/{before['slug']}", json={"name": new_name})
        assert resp.status_code == 200, resp.text
        after = resp.json()["agent"]
        assert after["id"] == before["id"]
        assert after["name"] == new_name
        assert after["slug"] == new_name.lower().replace(" ", "-")
        assert after["updatedAt"] >= before["updatedAt"]
        assert after["createdAt"] == before["createdAt"]
        assert_envelope(c.get(f"{AGENTS}/{before['slug']}"), 404, "NOT_FOUND")
        assert get_agent(c, after["slug"])["agent"]["id"] == before["id"]

        explicit = unique("explicit")
        resp = c.patch(f"{AGENTS}/{after['slug']}", json={"slug": explicit})
        assert resp.status_code == 200, resp.text
        assert resp.json()["agent"]["slug"] == explicit
        assert resp.json()["agent"]["name"] == new_name

        other = create_agent(c)["agent"]
        taken = c.patch(f"{AGENTS}/{other['slug']}", json={"slug": explicit})
        assert_envelope(taken, 409, "CONFLICT")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "changes nothing"),
        ({"name": None}, "name must not be null"),
        ({"name": "   "}, "name must not be empty"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": None}, "slug must not be null"),
        ({"modelPolicy": None}, "modelPolicy must not be null"),
    ],
)
def test_patch_rejects_empty_and_null_changes(
    server: Server, body: dict[str, Any], needle: str
) -> None:
    with server.client() as c:
        slug = create_agent(c)["agent"]["slug"]
        err = assert_envelope(c.patch(f"{AGENTS}/{slug}", json=body), 400, "BAD_REQUEST")
        assert needle in err["message"], err
        assert get_agent(c, slug)["agent"]["slug"] == slug


def test_delete_needs_the_current_slug_and_then_everything_is_gone(server: Server) -> None:
    with server.client() as c:
        doc = create_agent(c)
        slug, agent_id = doc["agent"]["slug"], doc["agent"]["id"]
        _, secret = issue_key(c, slug)
        path = f"{AGENTS}/{slug}"
        assert_envelope(c.delete(path), 400, "BAD_REQUEST")  # no body at all
        assert_envelope(c.request("DELETE", path, json={}), 400, "BAD_REQUEST")
        wrong = c.request("DELETE", path, json={"confirmationSlug": slug + "-x"})
        assert assert_envelope(wrong, 400, "BAD_REQUEST")["data"]["field"] == "confirmationSlug"
        assert get_agent(c, slug)["agent"]["id"] == agent_id

        resp = c.request("DELETE", path, json={"confirmationSlug": slug})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"deleted": True, "agent": {"id": agent_id, "slug": slug}}

        assert_envelope(c.get(path), 404, "NOT_FOUND")
        gone = c.request("DELETE", path, json={"confirmationSlug": slug})
        assert_envelope(gone, 404, "NOT_FOUND")
        assert_envelope(c.get(f"/v1/agents/{agent_id}/status"), 404, "NOT_FOUND")
        assert_envelope(c.get(f"{path}/keys"), 404, "NOT_FOUND")
    with server.client(secret) as runtime:
        assert_envelope(runtime.get(f"/v1/agents/{agent_id}/status"), 401, "UNAUTHORIZED")
        assert_envelope(
            runtime.post(f"/v1/agents/{agent_id}/exec", json={"input": "true"}),
            401,
            "UNAUTHORIZED",
        )


def test_list_agents_newest_first_with_cursor(server: Server) -> None:
    ws = unique("list")
    key = admin(server, "create-workspace", ws)["workspaceKey"]
    base = f"/v1/workspaces/{ws}/agents"
    with server.client(key) as c:
        empty = c.get(base)
        assert empty.status_code == 200
        assert empty.json() == {"agents": [], "hasMore": False, "nextCursor": None}
        made = []
        for i in range(5):
            resp = c.post(base, json={"name": f"Agent {i}"})
            assert resp.status_code == 201, resp.text
            made.append(resp.json()["agent"]["id"])
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get(base, params=params).json()
            pages += 1
            for doc in page["agents"]:
                assert_agent_doc(doc)
            seen += [d["agent"]["id"] for d in page["agents"]]
            assert page["hasMore"] is (page["nextCursor"] is not None)
            cursor = page["nextCursor"]
            if cursor is None:
                break
            assert pages < 10
        assert seen == list(reversed(made))
        assert pages == 3
        assert_envelope(c.get(base, params={"cursor": "garbage"}), 400, "BAD_REQUEST")
        assert_envelope(c.get(base, params={"limit": 0}), 400, "BAD_REQUEST")
        assert_envelope(c.get(base, params={"limit": 101}), 400, "BAD_REQUEST")


def test_patching_a_policy_keeps_the_fields_left_out(server: Server) -> None:
    with server.client() as c:
        slug = create_agent(
            c,
            modelPolicy={"provider": "openai", "model": "gpt-5.4"},
            runtimePolicy={
                "resourceLimits": {"memoryMiB": 8192, "pids": 256},
                "networkPolicy": {"mode": "allowlist", "allowList": ["pypi.org"]},
                "maxConcurrentRuns": 4,
            },
        )["agent"]["slug"]
        resp = c.patch(
            f"{AGENTS}/{slug}",
            json={
                "modelPolicy": {"model": "gpt-5.5"},
                "runtimePolicy": {"resourceLimits": {"memoryMiB": 4096}},
            },
        )
        assert resp.status_code == 200, resp.text
        agent = resp.json()["agent"]
        assert agent["modelPolicy"] == {"provider": "openai", "model": "gpt-5.5"}
        policy = agent["runtimePolicy"]
        assert policy["resourceLimits"]["memoryMiB"] == 4096
        assert policy["resourceLimits"]["pids"] == 256
        assert policy["networkPolicy"] == {"mode": "allowlist", "allowList": ["pypi.org"]}
        assert policy["maxConcurrentRuns"] == 4
        assert get_agent(c, slug)["agent"] == agent

        # A list is replaced as a whole; a bad merged value is still a 400.
        resp = c.patch(
            f"{AGENTS}/{slug}", json={"runtimePolicy": {"networkPolicy": {"allowList": []}}}
        )
        assert resp.json()["agent"]["runtimePolicy"]["networkPolicy"] == {
            "mode": "allowlist",
            "allowList": [],
        }
        bad = c.patch(f"{AGENTS}/{slug}", json={"runtimePolicy": {"maxConcurrentRuns": 0}})
        assert_envelope(bad, 400, "BAD_REQUEST")
        assert get_agent(c, slug)["agent"]["runtimePolicy"]["maxConcurrentRuns"] == 4
