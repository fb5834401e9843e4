"""Mapping between table rows and domain entities, shared by both backends.

JSON documents are stored as text in both SQLite and PostgreSQL so that one
mapping serves both; booleans come back as ints from SQLite and are folded.
"""

from __future__ import annotations

import json
from typing import Any

from runyard.domain.entities import (
    Agent,
    ApiKey,
    Environment,
    KeyKind,
    Run,
    RunError,
    Secret,
    Workspace,
)

Row = dict[str, Any]


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def loads(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return value
    return json.loads(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def workspace(row: Row) -> Workspace:
    return Workspace(id=row["id"], slug=row["slug"], created_at=row["created_at"])


def api_key(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        workspace_id=row["workspace_id"],
        kind=KeyKind(row["kind"]),
        name=row["name"],
        prefix=row["prefix"],
        secret_hash=row["secret_hash"],
        created_at=row["created_at"],
        agent_id=row["agent_id"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def agent(row: Row) -> Agent:
    return Agent(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        slug=row["slug"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model_policy=loads(row["model_policy"]),
        harness_targets=loads(row["harness_targets"]),
        capability_bindings=loads(row["capability_bindings"]),
        runtime_policy=loads(row["runtime_policy"]),
        environment=Environment(
            status=row["env_status"],
            attention=row["env_attention"],
            created_at=row["env_created_at"],
            updated_at=row["env_updated_at"],
            ready_at=row["env_ready_at"],
            last_error=row["env_last_error"],
            reconciliation_status=row["recon_status"],
            reconciliation_error=row["recon_error"],
        ),
    )


AGENT_JSON_FIELDS = ("model_policy", "harness_targets", "capability_bindings", "runtime_policy")


def agent_params(a: Agent) -> dict[str, Any]:
    e = a.environment
    return {
        "id": a.id,
        "workspace_id": a.workspace_id,
        "name": a.name,
        "slug": a.slug,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "model_policy": dumps(a.model_policy),
        "harness_targets": dumps(a.harness_targets),
        "capability_bindings": dumps(a.capability_bindings),
        "runtime_policy": dumps(a.runtime_policy),
        "env_status": e.status,
        "env_attention": e.attention,
        "env_created_at": e.created_at,
        "env_updated_at": e.updated_at,
        "env_ready_at": e.ready_at,
        "env_last_error": e.last_error,
        "recon_status": e.reconciliation_status,
        "recon_error": e.reconciliation_error,
    }


def run(row: Row) -> Run:
    return Run(
        id=row["id"],
        workspace_id=row["workspace_id"],
        agent_id=row["agent_id"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        input=row["input"],
        harness_requested=row["harness_requested"],
        harness_resolved=row["harness_resolved"],
        request=loads(row["request"]) or {},
        timeout_seconds=row["timeout_seconds"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        seq=row["seq"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        output=row["output"],
        error=RunError(
            code=row["error_code"],
            message=row["error_message"],
            retryable=_bool(row["error_retryable"]),
        ),
        warnings=loads(row["warnings"]),
        token_usage=loads(row["token_usage"]),
        tool_usage=loads(row["tool_usage"]),
        evidence=loads(row["evidence"]),
        session_id=row["session_id"],
        source=row["source"],
        title=row.get("title"),
        creator=row.get("creator"),
        team=bool(row.get("team")),
        lease_owner=row["lease_owner"],
        lease_token=row["lease_token"],
        lease_expires_at=row["lease_expires_at"],
    )


def run_params(r: Run, concurrency_limit: int) -> dict[str, Any]:
    return {
        "id": r.id,
        "workspace_id": r.workspace_id,
        "agent_id": r.agent_id,
        "status": r.status,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "input": r.input,
        "harness_requested": r.harness_requested,
        "harness_resolved": r.harness_resolved,
        "request": dumps(r.request),
        "timeout_seconds": r.timeout_seconds,
        "attempt": r.attempt,
        "max_attempts": r.max_attempts,
        "session_id": r.session_id,
        "source": r.source,
        "title": r.title,
        "creator": r.creator,
        "team": r.team,
        "concurrency_limit": concurrency_limit,
    }


def secret(row: Row) -> Secret:
    return Secret(
        id=row["id"],
        workspace_id=row["workspace_id"],
        name=row["name"],
        projection_name=row["projection_name"],
        ciphertext=row["ciphertext"],
        value_length=row["value_length"],
        agent_ids=loads(row["agent_ids"]) or [],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
