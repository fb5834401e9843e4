"""Property-based fuzzing of every body-taking endpoint: no input makes a 5xx.

Hypothesis posts arbitrary JSON (including NaN, huge integers and lone
surrogates, which are legal JSON text) and JSON shaped like each endpoint's
real body with arbitrary values spliced in, plus arbitrary bytes. Every
answer must be below 500, and every error must be the native envelope with
a stable code. ``/exec`` bodies have their ``input`` replaced by a harmless
script, so nothing random is ever executed on the test host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.acceptance.test_api_support import (
    AGENTS,
    assert_client_error,
    runtime_agent,
)
from tests.conftest import Server

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # nothing is written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CHARS = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from("/.\\~\x00"))
TEXT = st.text(alphabet=CHARS, max_size=24)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.sampled_from(["shell", "default", "available", "allow_all", "allowlist", "deny_all"]),
)
ANY_JSON = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def _or_any(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(shaped, ANY_JSON)


def _obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with any subset of ``fields``, sometimes with a random extra key."""
    known = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(
        known, known, st.fixed_dictionaries({}, optional={**fields, "extra": ANY_JSON})
    )


NAME = _or_any(st.text(min_size=1, max_size=40))
SLUG = _or_any(st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True))
TARGET = _or_any(
    _obj(
        harnessName=_or_any(st.sampled_from(["shell", "hermes", "openclaw", "nope"])),
        enabled=_or_any(st.booleans()),
        role=_or_any(st.sampled_from(["default", "available", "boss"])),
    )
)
TARGETS = _or_any(st.lists(TARGET, max_size=4))
INT = _or_any(st.integers(min_value=-5, max_value=300_000))
RUNTIME_POLICY = _or_any(
    _obj(
        resourceLimits=_or_any(_obj(memoryMiB=INT, diskGiB=INT, cpus=INT, pids=INT)),
        networkPolicy=_or_any(
            _obj(
                mode=_or_any(st.sampled_from(["deny_all", "allow_all", "allowlist"])),
                allowList=_or_any(st.lists(_or_any(st.sampled_from(["pypi.org", "*.x.io"])))),
            )
        ),
        storagePolicy=_or_any(_obj(persistent=_or_any(st.booleans()), sizeGb=INT)),
        maxConcurrentRuns=INT,
    )
)
MODEL_POLICY = _or_any(_obj(provider=NAME, model=NAME))
PATH = _or_any(
    st.one_of(
        st.text(alphabet=st.sampled_from("ab./\\~\x00 -\u00e9\ud800\udfff"), max_size=12),
        st.integers(min_value=250, max_value=260).map(lambda n: "a/" + "x" * n),
    )
)

BODIES: dict[str, st.SearchStrategy[Any]] = {
    "create": _obj(
        name=NAME,
        slug=SLUG,
        modelPolicy=MODEL_POLICY,
        harnessTargets=TARGETS,
        runtimePolicy=RUNTIME_POLICY,
    ),
    "patch": _obj(name=NAME, slug=SLUG, modelPolicy=MODEL_POLICY, runtimePolicy=RUNTIME_POLICY),
    "harnesses": _obj(harnessTargets=TARGETS),
    "delete": _obj(confirmationSlug=SLUG),
    "keys": _obj(name=NAME),
    "exec": _obj(
        input=st.one_of(st.just("true"), ANY_JSON),
        harness=_or_any(st.sampled_from(["shell", "shell", "hermes"])),
        sessionId=NAME,
        timeoutSeconds=_or_any(st.integers(min_value=-2, max_value=4000)),
        workspace=PATH,
        cwd=PATH,
    ),
}


@dataclass
class Target:
    """The fuzzed agent; its slug follows renames that a fuzzed PATCH may make."""

    slug: str
    agent_id: str

    def path(self, endpoint: str) -> tuple[str, str]:
        agent = f"{AGENTS}/{self.slug}"
        return {
            "create": ("POST", AGENTS),
            "patch": ("PATCH", agent),
            "harnesses": ("PATCH", f"{agent}/harnesses"),
            "delete": ("DELETE", agent),
            "keys": ("POST", f"{agent}/keys"),
            "exec": ("POST", f"/v1/agents/{self.agent_id}/exec"),
        }[endpoint]


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _target(server: Server) -> Target:
    """A fresh agent per endpoint, so one endpoint's fuzzing cannot steer another's."""
    made = runtime_agent(server)
    made.client.close()
    return Target(made.slug, made.id)


def _defang(body: Any) -> Any:
    """A string ``input`` becomes a harmless script; other types stay to be rejected."""
    if isinstance(body, dict) and isinstance(body.get("input"), str):
        return {**body, "input": "true"}
    return body


def _check(client: httpx.Client, target: Target, endpoint: str, body: Any) -> None:
    method, path = target.path(endpoint)
    resp = client.request(
        method,
        path,
        # ASCII-escaped, so lone surrogates go out; NaN/Infinity go out as Python writes them.
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code < 500, (endpoint, body, resp.status_code, resp.text[:500])
    if resp.status_code >= 400:
        assert_client_error(resp)
        return
    doc = resp.json()
    assert isinstance(doc, dict)
    if endpoint == "patch":
        target.slug = doc["agent"]["slug"]
    if endpoint == "delete":
        pytest.fail(f"a fuzzed body deleted the agent: {body!r}")


@pytest.mark.parametrize("endpoint", sorted(BODIES))
def test_fuzzed_bodies_never_make_a_5xx(
    server: Server, client: httpx.Client, endpoint: str
) -> None:
    target = _target(server)

    @FUZZ
    @given(body=st.one_of(ANY_JSON, BODIES[endpoint]))
    def run(body: Any) -> None:
        _check(client, target, endpoint, _defang(body))

    run()


def _runs_a_script(raw: bytes) -> bool:
    try:
        doc = json.loads(raw)
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("input"), str)


@pytest.mark.parametrize("endpoint", sorted(BODIES))
def test_fuzzed_bytes_never_make_a_5xx(server: Server, client: httpx.Client, endpoint: str) -> None:
    target = _target(server)

    @FUZZ
    @given(raw=st.binary(max_size=64))
    def run(raw: bytes) -> None:
        assume(not (endpoint == "exec" and _runs_a_script(raw)))
        method, path = target.path(endpoint)
        resp = client.request(
            method, path, content=raw, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code < 500, (endpoint, raw, resp.text[:500])
        if resp.status_code >= 400:
            assert_client_error(resp)

    run()


@pytest.fixture(scope="module")
def path_agent(server: Server) -> Target:
    return _target(server)


@FUZZ
@given(paths=st.fixed_dictionaries({}, optional={"workspace": PATH, "cwd": PATH}))
def test_fuzzed_paths_are_refused_or_stay_inside_the_home(
    server: Server, client: httpx.Client, path_agent: Target, paths: dict[str, Any]
) -> None:
    home = os.path.realpath(server.data_dir / "agents" / path_agent.agent_id / "home")
    resp = client.post(
        f"/v1/agents/{path_agent.agent_id}/exec",
        content=json.dumps({"input": "pwd", **paths}),
        headers={"Content-Type": "application/json"},
    )
    if resp.status_code == 400:
        assert_client_error(resp)
        return
    assert resp.status_code == 200, (paths, resp.text[:500])
    where = resp.json()["output"]["text"].rstrip("\n")
    assert where == home or where.startswith(home + "/"), (paths, where)
