"""Shared helpers for the HTTP acceptance battery (no tests of its own).

The control-plane, runtime, auth and robustness modules all talk HTTP to the
session's started ``runyard up``. What they share lives here: the native
error envelope check, the RFC 3339 timestamp check, bounded polling, making
agents and keys over the API, and running ``runyard admin`` against the
server's data directory. It is named ``test_api_*`` only so that it sits in
the files this battery owns; it defines no tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from tests.conftest import Server

T = TypeVar("T")

WS = "default"
AGENTS = f"/v1/workspaces/{WS}/agents"
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ENVELOPE_KEYS = {"defined", "code", "status", "message", "data"}


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_envelope(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The native error body, exactly: ``{defined, code, status, message, data}``."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert body["defined"] is True
    assert body["code"] == code, body
    assert body["status"] == status
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert isinstance(body["data"], dict), body
    return dict(body)


def assert_client_error(resp: httpx.Response) -> dict[str, Any]:
    """Any 4xx in the native envelope with a stable upper-case code (never a 5xx)."""
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:500])
    body = assert_envelope(resp, resp.status_code, resp.json().get("code", ""))
    assert re.fullmatch(r"[A-Z][A-Z_]+", body["code"]), body
    return body


def assert_ts(value: Any) -> None:
    assert isinstance(value, str) and RFC3339_MS.match(value), value


def poll(read: Callable[[], T], until: Callable[[T], bool], seconds: float = 20.0) -> T:
    """Re-read until ``until`` holds; a bounded loop, failing with the last value seen."""
    deadline = time.monotonic() + seconds
    value = read()
    while not until(value):
        assert time.monotonic() < deadline, f"condition not reached; last value: {value!r}"
        time.sleep(0.05)
        value = read()
    return value


def send_json(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    """Send ``body`` as ASCII-escaped JSON, so that even lone surrogates (legal JSON) go out."""
    return client.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def bare_client(server: Server, headers: dict[str, str] | None = None) -> httpx.Client:
    """A client with no credentials unless ``headers`` carries them."""
    return httpx.Client(base_url=server.base_url, headers=headers or {}, timeout=60)


def create_agent(
    client: httpx.Client, name: str | None = None, ws: str = WS, **body: Any
) -> dict[str, Any]:
    resp = client.post(
        f"/v1/workspaces/{ws}/agents", json={"name": name or unique("Agent"), **body}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def get_agent(client: httpx.Client, slug: str) -> dict[str, Any]:
    resp = client.get(f"{AGENTS}/{slug}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def wait_ready(client: httpx.Client, slug: str) -> dict[str, Any]:
    return poll(lambda: get_agent(client, slug), lambda d: d["environment"]["status"] == "ready")


def issue_key(
    client: httpx.Client, slug: str, name: str = "", ws: str = WS
) -> tuple[dict[str, Any], str]:
    resp = client.post(f"/v1/workspaces/{ws}/agents/{slug}/keys", json={"name": name})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return body["key"], body["secret"]


@dataclass
class RuntimeAgent:
    """An agent plus a runtime key for it, and a client that sends that key."""

    id: str
    slug: str
    secret: str
    key_id: str
    client: httpx.Client

    @property
    def base(self) -> str:
        return f"/v1/agents/{self.id}"

    def exec(self, **body: Any) -> httpx.Response:
        return send_json(self.client, "POST", f"{self.base}/exec", body)

    def run(self, run_id: str) -> dict[str, Any]:
        resp = self.client.get(f"{self.base}/runs/{run_id}")
        assert resp.status_code == 200, resp.text
        assert set(resp.json()) == {"run"}
        return dict(resp.json()["run"])


def runtime_agent(server: Server, **create: Any) -> RuntimeAgent:
    with server.client() as c:
        doc = create_agent(c, **{"runtimePolicy": {"maxConcurrentRuns": 4}, **create})
        slug = doc["agent"]["slug"]
        key, secret = issue_key(c, slug, "acceptance")
    client = server.client(secret)
    return RuntimeAgent(doc["agent"]["id"], slug, secret, key["id"], client)


def admin(server: Server, *args: str) -> dict[str, Any]:
    """Run ``python -m runyard admin …`` on the server's data dir; returns its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "runyard", "admin", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


AGENT_KEYS = {
    "id",
    "name",
    "slug",
    "createdAt",
    "updatedAt",
    "modelPolicy",
    "harnessTargets",
    "capabilityBindings",
    "runtimePolicy",
}
ENVIRONMENT_KEYS = {
    "status",
    "attention",
    "readyAt",
    "createdAt",
    "updatedAt",
    "lastError",
    "runtimeReconciliation",
}


def assert_agent_doc(doc: dict[str, Any]) -> None:
    """The reference's inspection document, field by field."""
    assert set(doc) == {"agent", "environment"}, doc
    agent, env = doc["agent"], doc["environment"]
    assert set(agent) == AGENT_KEYS, agent
    assert re.fullmatch(r"agent_[0-9a-z]{26}", agent["id"]), agent["id"]
    assert isinstance(agent["name"], str) and agent["name"]
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", agent["slug"]), agent["slug"]
    assert_ts(agent["createdAt"])
    assert_ts(agent["updatedAt"])
    assert agent["updatedAt"] >= agent["createdAt"]
    assert set(agent["modelPolicy"]) >= {"provider", "model"}
    for target in agent["harnessTargets"]:
        assert set(target) == {"harnessName", "enabled", "role"}, target
        assert isinstance(target["enabled"], bool)
        assert target["role"] in ("default", "available")
    assert isinstance(agent["capabilityBindings"], list)
    policy = agent["runtimePolicy"]
    assert set(policy) >= {"resourceLimits", "networkPolicy", "storagePolicy"}, policy
    assert set(policy["resourceLimits"]) >= {"memoryMiB", "diskGiB"}
    assert set(policy["networkPolicy"]) == {"mode", "allowList"}
    assert policy["networkPolicy"]["mode"] in ("deny_all", "allow_all", "allowlist")
    assert set(policy["storagePolicy"]) == {"persistent", "sizeGb"}
    assert set(env) == ENVIRONMENT_KEYS, env
    assert env["status"] in ("pending", "provisioning", "ready", "failed", "deleting")
    assert isinstance(env["attention"], str)
    assert_ts(env["createdAt"])
    assert_ts(env["updatedAt"])
    if env["readyAt"] is not None:
        assert_ts(env["readyAt"])
    assert env["lastError"] is None or isinstance(env["lastError"], str)
    assert set(env["runtimeReconciliation"]) == {"status", "lastError"}
