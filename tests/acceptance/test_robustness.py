"""Robustness: hostile or careless requests get clear 4xx envelopes, never a 500.

Each body-taking endpoint of the control plane and the runtime API is fed
malformed JSON, JSON of the wrong shape and types, unknown fields (top level
and nested), non-JSON media types, empty and oversized bodies (declared and
chunked); paths and query strings get odd and huge values; unknown routes
and wrong methods get the native envelope too. Every answer is checked for
its status and stable ``code``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.acceptance.test_api_support import (
    AGENTS,
    RuntimeAgent,
    assert_client_error,
    assert_envelope,
    runtime_agent,
    send_json,
)
from tests.conftest import Server

BODY_LIMIT = 1_048_576 * 2 + 65_536  # app.py: twice max_input_bytes plus headroom


@pytest.fixture(scope="module")
def target(server: Server) -> Iterator[RuntimeAgent]:
    made = runtime_agent(server)
    with made.client:
        yield made


def endpoints(t: RuntimeAgent) -> dict[str, tuple[str, str]]:
    """Every endpoint that reads a JSON body: name -> (method, path)."""
    agent = f"{AGENTS}/{t.slug}"
    return {
        "create": ("POST", AGENTS),
        "patch": ("PATCH", agent),
        "harnesses": ("PATCH", f"{agent}/harnesses"),
        "delete": ("DELETE", agent),
        "keys": ("POST", f"{agent}/keys"),
        "exec": ("POST", f"{t.base}/exec"),
    }


ENDPOINTS = ["create", "patch", "harnesses", "delete", "keys", "exec"]
REQUIRED_BODY = [e for e in ENDPOINTS if e != "keys"]  # a key's name is optional


def _raw(
    server: Server, method: str, path: str, content: bytes | str, content_type: str | None
) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    with server.client() as c:
        return c.request(method, path, content=content, headers=headers)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "content",
    ['{"name": ', "{", "nul", '{"a": 1,}', "{'name': 'x'}", b"\xff\xfe\x00", "[" * 100_000],
)
def test_malformed_json_is_400(
    server: Server, target: RuntimeAgent, endpoint: str, content: str | bytes
) -> None:
    method, path = endpoints(target)[endpoint]
    resp = _raw(server, method, path, content, "application/json")
    assert_envelope(resp, 400, "BAD_REQUEST")


@pytest.mark.parametrize("endpoint", REQUIRED_BODY)
@pytest.mark.parametrize("body", [[], ["name"], "name", 5, 1.5, True, None, {}])
def test_wrong_top_level_shape_is_400(
    server: Server, target: RuntimeAgent, endpoint: str, body: Any
) -> None:
    method, path = endpoints(target)[endpoint]
    with server.client() as c:
        assert_envelope(send_json(c, method, path, body), 400, "BAD_REQUEST")


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("create", {"name": "X", "color": "red"}, "color"),
        ("create", {"name": "X", "modelPolicy": {"temperature": 1}}, "modelPolicy.temperature"),
        (
            "create",
            {"name": "X", "runtimePolicy": {"networkPolicy": {"foo": 1}}},
            "runtimePolicy.networkPolicy.foo",
        ),
        (
            "create",
            {"name": "X", "runtimePolicy": {"resourceLimits": {"gpus": 1}}},
            "runtimePolicy.resourceLimits.gpus",
        ),
        (
            "create",
            {"name": "X", "harnessTargets": [{"harnessName": "shell", "priority": 1}]},
            "harnessTargets.0.priority",
        ),
        ("patch", {"name": "X", "id": "agent_x"}, "id"),
        ("patch", {"runtimePolicy": {"storagePolicy": {"encrypted": True}}}, "encrypted"),
        ("harnesses", {"harnessTargets": [], "force": True}, "force"),
        ("delete", {"confirmationSlug": "x", "force": True}, "force"),
        ("keys", {"name": "x", "kind": "workspace"}, "kind"),
        ("exec", {"input": "true", "prompt": "x"}, "prompt"),
        ("exec", {"input": "true", "env": {"A": "1"}}, "env"),
    ],
)
def test_unknown_fields_are_rejected_not_dropped(
    server: Server, target: RuntimeAgent, endpoint: str, body: Any, field: str
) -> None:
    method, path = endpoints(target)[endpoint]
    with server.client() as c:
        err = assert_envelope(send_json(c, method, path, body), 400, "BAD_REQUEST")
    fields = [e["field"] for e in err["data"]["errors"]]
    assert any(f.endswith(field) for f in fields), fields
    assert field.rsplit(".", 1)[-1] in err["message"]


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("create", {"name": 5}),
        ("create", {"name": "X", "slug": 5}),
        ("create", {"name": "X", "runtimePolicy": {"resourceLimits": {"memoryMiB": "4096"}}}),
        ("create", {"name": "X", "runtimePolicy": {"resourceLimits": {"memoryMiB": 4096.5}}}),
        ("create", {"name": "X", "runtimePolicy": {"storagePolicy": {"persistent": "yes"}}}),
        ("create", {"name": "X", "runtimePolicy": {"storagePolicy": {"persistent": 1}}}),
        ("create", {"name": "X", "runtimePolicy": {"networkPolicy": {"mode": "open"}}}),
        ("create", {"name": "X", "runtimePolicy": {"networkPolicy": {"allowList": "a.com"}}}),
        ("create", {"name": "X", "runtimePolicy": {"maxConcurrentRuns": "2"}}),
        ("create", {"name": "X", "runtimePolicy": []}),
        ("create", {"name": "X", "modelPolicy": "gpt"}),
        ("create", {"name": "X", "harnessTargets": "shell"}),
        ("create", {"name": "X", "harnessTargets": [{"harnessName": "shell", "enabled": 1}]}),
        ("patch", {"name": ["X"]}),
        ("patch", {"runtimePolicy": {"resourceLimits": {"cpus": "2"}}}),
        ("harnesses", {"harnessTargets": [["shell"]]}),
        ("harnesses", {"harnessTargets": None}),
        ("delete", {"confirmationSlug": 5}),
        ("delete", {"confirmationSlug": None}),
        ("keys", {"name": None}),
        ("exec", {"input": 5}),
        ("exec", {"input": ["echo"]}),
        ("exec", {"input": "true", "timeoutSeconds": "5"}),
        ("exec", {"input": "true", "timeoutSeconds": True}),
        ("exec", {"input": "true", "timeoutSeconds": 1.5}),
        ("exec", {"input": "true", "timeoutSeconds": -1}),
        ("exec", {"input": "true", "timeoutSeconds": 10**30}),
        ("exec", {"input": "true", "harness": 1}),
        ("exec", {"input": "true", "sessionId": {}}),
        ("exec", {"input": "true", "cwd": 5}),
        ("exec", {"input": "true\u0000"}),
    ],
)
def test_wrong_types_and_values_are_400(
    server: Server, target: RuntimeAgent, endpoint: str, body: Any
) -> None:
    method, path = endpoints(target)[endpoint]
    runs = f"{target.base}/runs"
    with server.client() as c:
        before = c.get(runs).json()
        err = assert_envelope(send_json(c, method, path, body), 400, "BAD_REQUEST")
        assert c.get(runs).json() == before  # nothing was queued
    assert err["data"]["retryable"] is False


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"name": "X"}', "text/plain"),
        ("name=X", "application/x-www-form-urlencoded"),
        ("--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--", "multipart/form-data"),
        ("<agent/>", "application/xml"),
    ],
)
def test_non_json_media_types_are_415(
    server: Server, target: RuntimeAgent, endpoint: str, content: str, content_type: str
) -> None:
    method, path = endpoints(target)[endpoint]
    resp = _raw(server, method, path, content, content_type)
    assert_envelope(resp, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("endpoint", REQUIRED_BODY)
@pytest.mark.parametrize("content_type", ["application/json", None])
def test_empty_body_where_one_is_required_is_400(
    server: Server, target: RuntimeAgent, endpoint: str, content_type: str | None
) -> None:
    method, path = endpoints(target)[endpoint]
    resp = _raw(server, method, path, b"", content_type)
    err = assert_envelope(resp, 400, "BAD_REQUEST")
    assert "body is required" in err["message"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_oversized_bodies_are_413_declared_or_chunked(
    server: Server, target: RuntimeAgent, endpoint: str
) -> None:
    method, path = endpoints(target)[endpoint]
    big = json.dumps({"input": "x" * (BODY_LIMIT + 1)}).encode()
    with server.client() as c:
        declared = c.request(
            method, path, content=big, headers={"Content-Type": "application/json"}
        )
        assert_envelope(declared, 413, "PAYLOAD_TOO_LARGE")

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 65_536):
                yield big[start : start + 65_536]

        chunked = c.request(
            method, path, content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in chunked.request.headers
        assert_envelope(chunked, 413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_body_under_the_limit_is_read_whole(target: RuntimeAgent) -> None:
    body = json.dumps({"input": "printf %s " + "y" * 200_000}).encode()
    parts = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    resp = target.client.post(
        f"{target.base}/exec", content=iter(parts), headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["output"]["text"] == "y" * 200_000


@pytest.mark.parametrize(
    "path",
    [
        f"{AGENTS}/{'a' * 5000}",
        f"{AGENTS}/{'a' * 5000}/keys",
        f"/v1/workspaces/{'w' * 5000}/agents",
        f"/v1/agents/{'a' * 5000}/status",
        f"/v1/agents/{'a' * 5000}/runs",
        f"{AGENTS}/%00",
        f"{AGENTS}/%ff%fe",
        f"{AGENTS}/%F0%9F%98%80",
        f"{AGENTS}/..%2f..%2fetc",
        f"{AGENTS}/a%20b",
        "/v1/agents/%00/status",
        "/v1/agents/%ff/runs",
        "/v1/agents/agent_x/runs/%ff%00",
        "/v1/workspaces/%00/agents",
        "/v1/workspaces/default/agents/x/keys/%ff",
    ],
)
def test_huge_and_odd_path_segments_are_4xx(server: Server, path: str) -> None:
    with server.client() as c:
        assert_client_error(c.get(path))
        assert_client_error(c.delete(path))


def test_runtime_ids_too_long_for_any_object_are_400(server: Server, target: RuntimeAgent) -> None:
    with server.client() as c:
        err = assert_envelope(c.get(f"/v1/agents/{'a' * 101}/status"), 400, "BAD_REQUEST")
        assert "agentId" in err["message"]
        err = assert_envelope(c.get(f"{target.base}/runs/{'r' * 101}"), 400, "BAD_REQUEST")
        assert "runId" in err["message"]


@pytest.mark.parametrize(
    "path",
    ["/", "/v1", "/v2/agents", "/v1/agentz", "/v1/workspaces", "/v1/agents/x/nope", "/.env"],
)
def test_unknown_routes_are_404_envelopes(server: Server, path: str) -> None:
    with httpx.Client(base_url=server.base_url) as anonymous:
        body = assert_envelope(anonymous.get(path), 404, "NOT_FOUND")
    assert body["message"] == "no such endpoint"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", AGENTS),
        ("DELETE", AGENTS),
        ("POST", f"{AGENTS}/some-agent"),
        ("PUT", f"{AGENTS}/some-agent/harnesses"),
        ("GET", f"{AGENTS}/some-agent/harnesses"),
        ("PATCH", f"{AGENTS}/some-agent/keys"),
        ("GET", "/v1/agents/agent_x/exec"),
        ("POST", "/v1/agents/agent_x/status"),
        ("PUT", "/v1/agents/agent_x/runs"),
        ("DELETE", "/v1/agents/agent_x/runs/run_x"),
        ("GET", "/v1/agents/agent_x/runs/run_x/cancel"),
        ("POST", "/v1/agents/agent_x/runs/run_x/events"),
        ("POST", "/healthz"),
    ],
)
def test_wrong_methods_are_405_envelopes(server: Server, method: str, path: str) -> None:
    with server.client() as c:
        assert_envelope(c.request(method, path), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=-5",
        "limit=0",
        "limit=1000",
        "limit=99999999999999999999999",
        "limit=%00",
        "cursor=%ff%fe",
        "cursor=" + "a" * 500,
        "cursor=cjE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk",
        "cursor=YTE6YWdlbnRfAA",  # "a1:agent_\x00"
        "cursor=%00",
    ],
)
def test_bad_query_params_are_400(server: Server, target: RuntimeAgent, query: str) -> None:
    with server.client() as c:
        assert_envelope(c.get(f"{target.base}/runs?{query}"), 400, "BAD_REQUEST")
        assert_envelope(c.get(f"{AGENTS}?{query}"), 400, "BAD_REQUEST")
