"""Capabilities control plane: shapes, every 400, tenancy, stateVersion, missingSecrets."""

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
from tests.conftest import Server

CLI = {
    "kind": "cli",
    "name": "ffmpeg",
    "source": "system",
    "status": "declared",
    "validationPlan": {"strategy": "executable", "executable": "ffmpeg", "versionArgs": ["-v"]},
}
MCP = {
    "kind": "mcp_server",
    "name": "github",
    "mcpServer": {
        "command": ["npx", "-y", "@modelcontextprotocol/server-github"],
        "env": {"GITHUB_TOKEN": {"secret": "gh-token"}, "LOG": "debug"},
    },
}
STATE_KEYS = {"stateVersion", "capabilities", "missingSecrets"}


def _base(slug: str, ws: str = "default") -> str:
    return f"/v1/workspaces/{ws}/agents/{slug}/capabilities"


def _post(c: httpx.Client, slug: str, cap: Any) -> httpx.Response:
    return send_json(c, "POST", _base(slug), {"capability": cap})


@pytest.fixture
def slug(server: Server) -> str:
    with server.client() as c:
        return str(create_agent(c, unique("Caps"))["agent"]["slug"])


def test_crud_shapes_versions_and_bindings(server: Server, slug: str) -> None:
    with server.client() as c:
        empty = c.get(_base(slug))
        assert empty.status_code == 200
        assert empty.json() == {"stateVersion": 0, "capabilities": [], "missingSecrets": []}
        made = _post(c, slug, CLI)
        assert made.status_code == 201, made.text
        body = made.json()
        assert set(body) == STATE_KEYS and body["stateVersion"] == 1
        [cap] = body["capabilities"]
        assert cap["id"].startswith("capability_")
        assert {k: cap[k] for k in CLI} == CLI
        assert cap["evidence"] == {"status": None, "error": None, "updatedAt": None}
        assert_ts(cap["createdAt"])
        assert_ts(cap["updatedAt"])
        assert c.get(_base(slug)).json() == body
        agent = c.get(f"/v1/workspaces/default/agents/{slug}").json()["agent"]
        binding = {"capabilityId": cap["id"], "kind": "cli", "name": "ffmpeg"}
        assert agent["capabilityBindings"] == [{**binding, "status": "declared"}]

        patched = send_json(
            c, "PATCH", f"{_base(slug)}/{cap['id']}", {"capability": {"status": "disabled"}}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["stateVersion"] == 2
        assert patched.json()["capabilities"][0]["status"] == "disabled"
        assert patched.json()["capabilities"][0]["validationPlan"] == CLI["validationPlan"]
        agent = c.get(f"/v1/workspaces/default/agents/{slug}").json()["agent"]
        assert agent["capabilityBindings"] == [{**binding, "status": "disabled"}]

        dup = _post(c, slug, CLI)
        assert_envelope(dup, 409, "CONFLICT")
        gone = c.delete(f"{_base(slug)}/{cap['id']}")
        assert gone.status_code == 200
        assert gone.json() == {"stateVersion": 3, "capabilities": [], "missingSecrets": []}
        assert (
            c.get(f"/v1/workspaces/default/agents/{slug}").json()["agent"]["capabilityBindings"]
            == []
        )
        assert_envelope(c.delete(f"{_base(slug)}/{cap['id']}"), 404, "NOT_FOUND")
        assert_envelope(
            send_json(c, "PATCH", f"{_base(slug)}/{cap['id']}", {"capability": {}}),
            404,
            "NOT_FOUND",
        )


def test_missing_secrets_and_mcp_shape(server: Server, slug: str) -> None:
    with server.client() as c:
        agent_id = c.get(f"/v1/workspaces/default/agents/{slug}").json()["agent"]["id"]
        made = _post(c, slug, MCP)
        assert made.status_code == 201, made.text
        assert made.json()["missingSecrets"] == ["gh-token"]
        assert made.json()["capabilities"][0]["mcpServer"] == MCP["mcpServer"]
        put = c.put(
            "/v1/workspaces/default/secrets/gh-token",
            json={"projectionName": "GH_TOKEN", "value": "v" * 12, "agentIds": []},
        )
        assert put.status_code in (200, 201), put.text
        assert c.get(_base(slug)).json()["missingSecrets"] == ["gh-token"]  # not bound
        bound = c.put(
            "/v1/workspaces/default/secrets/gh-token",
            json={"projectionName": "GH_TOKEN", "agentIds": [agent_id]},
        )
        assert bound.status_code == 200, bound.text
        listed = c.get(_base(slug)).json()
        assert listed["missingSecrets"] == []
        assert "v" * 12 not in c.get(_base(slug)).text
        c.delete("/v1/workspaces/default/secrets/gh-token")


def test_capability_change_queues_reconciliation(server: Server, slug: str) -> None:
    with server.client() as c:
        wait_ready(c, slug)
        assert (
            _post(
                c,
                slug,
                {
                    **CLI,
                    "name": "bash",
                    "validationPlan": {
                        "strategy": "executable",
                        "executable": "bash",
                        "versionArgs": ["--version"],
                    },
                },
            ).status_code
            == 201
        )
        final = poll(
            lambda: c.get(_base(slug)).json()["capabilities"][0]["evidence"],
            lambda e: e["status"] is not None,
            seconds=30,
        )
        assert final["status"] == "validated" and final["error"] is None
        # Evidence and the reconciliation's end are separate writes: wait for the second.
        env = poll(
            lambda: c.get(f"/v1/workspaces/default/agents/{slug}").json()["environment"],
            lambda e: e["runtimeReconciliation"]["status"] != "pending",
            seconds=30,
        )
        assert env["runtimeReconciliation"] == {"status": "applied", "lastError": None}


BAD: list[tuple[str, Any]] = [
    ("no kind", {"name": "x", "source": "https://example.com/x.git"}),
    ("unknown kind", {"kind": "plugin", "name": "x"}),
    ("runtime status", {**CLI, "status": "validated"}),
    ("failed status", {**CLI, "status": "failed"}),
    ("unknown field", {**CLI, "color": "blue"}),
    ("unknown plan field", {**CLI, "validationPlan": {**CLI["validationPlan"], "x": 1}}),
    ("bad strategy", {**CLI, "validationPlan": {"strategy": "guess", "executable": "x"}}),
    ("bad executable", {**CLI, "validationPlan": {"strategy": "executable", "executable": "a b"}}),
    ("no plan", {"kind": "cli", "name": "x"}),
    ("bad name", {**CLI, "name": "../etc"}),
    ("dot name", {**CLI, "name": ".hidden"}),
    ("int name", {**CLI, "name": 5}),
    ("skill without source", {"kind": "skill", "name": "s"}),
    ("ssh source", {"kind": "skill", "name": "s", "source": "git@github.com:a/b.git"}),
    ("ftp source", {"kind": "skill", "name": "s", "source": "ftp://example.com/s.tar.gz"}),
    ("http git", {"kind": "skill", "name": "s", "source": "http://example.com/repo.git"}),
    ("dotdot source", {"kind": "skill", "name": "s", "source": "a/../../etc"}),
    ("local without root", {"kind": "skill", "name": "s", "source": "some/skill"}),
    ("file without root", {"kind": "skill", "name": "s", "source": "file:///srv/skill"}),
    ("package bad manager", {"kind": "package", "name": "p",
                             "installPlan": {"manager": "apt", "packages": ["x"]}}),
    ("package no packages", {"kind": "package", "name": "p",
                             "installPlan": {"manager": "pip", "packages": []}}),
    ("package option", {"kind": "package", "name": "p",
                        "installPlan": {"manager": "pip", "packages": ["--index-url=x"]}}),
    ("mcp empty", {"kind": "mcp_server", "name": "m", "mcpServer": {"command": []}}),
    ("mcp env name", {**MCP, "mcpServer": {"command": ["x"], "env": {"a-b": "1"}}}),
    ("mcp env ref", {**MCP, "mcpServer": {"command": ["x"], "env": {"A": {"sec": "x"}}}}),
    ("not an object", ["cli"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "cap"), BAD, ids=[b[0] for b in BAD])
def test_invalid_capabilities_are_clear_400s(
    server: Server, slug: str, case: str, cap: Any
) -> None:
    with server.client() as c:
        body = assert_envelope(_post(c, slug, cap), 400, "BAD_REQUEST")
        assert body["message"]
        assert c.get(_base(slug)).json()["stateVersion"] == 0


def test_invalid_bodies_and_patches(server: Server, slug: str) -> None:
    with server.client() as c:
        assert_envelope(send_json(c, "POST", _base(slug), {}), 400, "BAD_REQUEST")
        assert_envelope(
            send_json(c, "POST", _base(slug), {"capability": CLI, "extra": 1}), 400, "BAD_REQUEST"
        )
        cap_id = _post(c, slug, CLI).json()["capabilities"][0]["id"]
        url = f"{_base(slug)}/{cap_id}"
        for patch in (
            {"status": "validated"},
            {"status": "available"},
            {"kind": "skill"},
            {"evidence": {"status": "validated"}},
            {"validationPlan": {"strategy": "executable"}},
        ):
            resp = send_json(c, "PATCH", url, {"capability": patch})
            assert_envelope(resp, 400, "BAD_REQUEST")
        assert c.get(_base(slug)).json()["stateVersion"] == 1


def test_other_workspace_is_404(server: Server, slug: str) -> None:
    other = admin(server, "create-workspace", unique("capws"))
    with server.client() as c:
        cap_id = _post(c, slug, CLI).json()["capabilities"][0]["id"]
    with server.client(str(other["workspaceKey"])) as o:
        ws = str(other["workspace"])
        assert_envelope(o.get(_base(slug, ws)), 404, "NOT_FOUND")
        assert_envelope(o.get(_base(slug)), 404, "NOT_FOUND")
        assert_envelope(
            send_json(o, "POST", _base(slug, ws), {"capability": CLI}), 404, "NOT_FOUND"
        )
        assert_envelope(o.delete(f"{_base(slug, ws)}/{cap_id}"), 404, "NOT_FOUND")
        mine = create_agent(o, unique("Theirs"), ws=ws)["agent"]["slug"]
        assert_envelope(o.delete(f"{_base(mine, ws)}/{cap_id}"), 404, "NOT_FOUND")
        assert_envelope(
            send_json(o, "PATCH", f"{_base(mine, ws)}/{cap_id}", {"capability": {}}),
            404,
            "NOT_FOUND",
        )
    with server.client() as c:
        assert len(c.get(_base(slug)).json()["capabilities"]) == 1
