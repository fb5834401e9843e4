"""Builders for the store contract suite: workspaces, agents, keys and runs in one call.

The contract tests talk to the :class:`~runyard.store.base.Store` protocol
only; these helpers keep each test about the behaviour it checks rather than
about filling in entity fields. ``peer`` opens a second store instance on
the same database (another connection pool or SQLite connection set), which
is how the suite checks behaviour across processes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from runyard.domain.entities import (
    Agent,
    ApiKey,
    Environment,
    KeyKind,
    Run,
    RunError,
    RunOutcome,
    Workspace,
)
from runyard.store.base import Store
from runyard.store.postgres import PostgresStore
from runyard.store.sqlite import SqliteStore
from runyard.types import new_id, now_millis

LEASE_MS = 60_000


def workspace(store: Store, slug: str | None = None) -> Workspace:
    ws = Workspace(id=new_id("ws"), slug=slug or f"ws-{secrets.token_hex(4)}", created_at=1)
    store.create_workspace(ws)
    return ws


def agent_entity(
    ws: Workspace, slug: str | None = None, *, env_status: str = "ready", now: int = 1_000
) -> Agent:
    slug = slug or f"agent-{secrets.token_hex(4)}"
    return Agent(
        id=new_id("agent"),
        workspace_id=ws.id,
        name=slug.replace("-", " ").title(),
        slug=slug,
        created_at=now,
        updated_at=now,
        model_policy={"provider": None, "model": None},
        harness_targets=[{"harnessName": "shell", "enabled": True, "role": "default"}],
        capability_bindings=[],
        runtime_policy={"maxConcurrentRuns": 1, "networkPolicy": {"mode": "deny_all"}},
        environment=Environment(
            status=env_status, attention="none", created_at=now, updated_at=now
        ),
    )


def agent(store: Store, ws: Workspace, slug: str | None = None, **kw: Any) -> Agent:
    made = agent_entity(ws, slug, **kw)
    store.insert_agent(made)
    return made


def key(
    store: Store, ws: Workspace, agent_id: str | None = None, kind: KeyKind | None = None
) -> ApiKey:
    kind = kind or (KeyKind.AGENT if agent_id else KeyKind.WORKSPACE)
    made = ApiKey(
        id=new_id("key"),
        workspace_id=ws.id,
        kind=kind,
        name="test",
        prefix="sk_test",
        secret_hash=secrets.token_hex(32),
        created_at=1,
        agent_id=agent_id,
    )
    store.insert_key(made)
    return made


def run_entity(a: Agent, *, max_attempts: int = 1, text: str = "echo hi") -> Run:
    now = now_millis()
    return Run(
        id=new_id("run"),
        workspace_id=a.workspace_id,
        agent_id=a.id,
        status="queued",
        created_at=now,
        updated_at=now,
        input=text,
        harness_requested=None,
        harness_resolved="shell",
        request={"harness": None, "timeoutSeconds": 60},
        timeout_seconds=60,
        max_attempts=max_attempts,
        session_id="sess-1",
    )


def run(store: Store, a: Agent, *, limit: int = 1, max_attempts: int = 1) -> Run:
    made = run_entity(a, max_attempts=max_attempts)
    store.insert_run(made, concurrency_limit=limit)
    return made


def claim(
    store: Store, worker: str = "w1", *, now: int | None = None, lease_ms: int = LEASE_MS
) -> tuple[Run | None, str]:
    """Claim the next run as ``worker``; returns it (or None) and the token used."""
    token = secrets.token_hex(16)
    at = now_millis() if now is None else now
    return store.claim_run(worker, token, at + lease_ms, at), token


def claim_one(store: Store, worker: str = "w1", **kw: Any) -> tuple[Run, str]:
    got, token = claim(store, worker, **kw)
    assert got is not None, "expected a run to claim"
    return got, token


def completed(output: str = "ok") -> RunOutcome:
    return RunOutcome(
        status="completed",
        output=output,
        warnings=["w"],
        token_usage={"source": "provider_response", "totalTokens": 3},
        tool_usage={"source": "harness", "toolCallCount": 1},
        session_id="sess-2",
        harness_resolved="shell",
    )


def failed(code: str = "harness_failed") -> RunOutcome:
    return RunOutcome(status="failed", error=RunError(code=code, message="boom", retryable=False))


def current(store: Store, r: Run) -> Run:
    got = store.get_run(r.workspace_id, r.id)
    assert got is not None
    return got


def peer(store: Store) -> Store:
    """Another store instance on the same database (its own connections)."""
    if isinstance(store, PostgresStore):
        return PostgresStore(store.url)
    assert isinstance(store, SqliteStore)
    return SqliteStore(Path(store.path))


def wait_until(check: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    """Poll ``check`` until true; fail with ``what`` after a generous deadline."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def replace_policy(a: Agent, runtime_policy: dict[str, Any]) -> Agent:
    return replace(a, runtime_policy=runtime_policy)
