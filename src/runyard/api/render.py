"""Entities to native wire documents: camelCase, RFC 3339 times, support-safe.

The run document never carries the prompt, raw stdout/stderr, lease or host
data: only what the reference's public run history returns.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from runyard import __version__
from runyard.domain.entities import Agent, ApiKey, Run
from runyard.types import iso_millis

EMPTY_TOKEN_USAGE: dict[str, Any] = {
    "source": None,
    "inputTokens": None,
    "outputTokens": None,
    "reasoningTokens": None,
    "cacheReadTokens": None,
    "cacheWriteTokens": None,
    "totalTokens": None,
}
EMPTY_TOOL_USAGE: dict[str, Any] = {"source": None, "toolCallCount": None}


def agent_doc(agent: Agent) -> dict[str, Any]:
    env = agent.environment
    return {
        "agent": {
            "id": agent.id,
            "name": agent.name,
            "slug": agent.slug,
            "createdAt": iso_millis(agent.created_at),
            "updatedAt": iso_millis(agent.updated_at),
            "modelPolicy": agent.model_policy,
            "harnessTargets": agent.harness_targets,
            "capabilityBindings": agent.capability_bindings,
            "runtimePolicy": agent.runtime_policy,
        },
        "environment": {
            "status": env.status,
            "attention": env.attention,
            "readyAt": iso_millis(env.ready_at),
            "createdAt": iso_millis(env.created_at),
            "updatedAt": iso_millis(env.updated_at),
            "lastError": env.last_error,
            "runtimeReconciliation": {
                "status": env.reconciliation_status,
                "lastError": env.reconciliation_error,
            },
        },
    }


def key_doc(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "kind": key.kind.value,
        "prefix": key.prefix,
        "agentId": key.agent_id,
        "createdAt": iso_millis(key.created_at),
        "revokedAt": iso_millis(key.revoked_at),
        "lastUsedAt": iso_millis(key.last_used_at),
    }


def _only(shape: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """``shape``'s keys, filled from ``stored``: a harness cannot widen the public document."""
    stored = stored or {}
    return {key: stored.get(key, default) for key, default in shape.items()}


def public_evidence(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Only the evidence fields the reference publishes.

    Workers record more (isolation details, cgroup and egress statistics,
    the applied policy); that stays in the store for operators and is never
    part of the public run document.
    """
    stored = stored or {}
    return {
        "stateCandidateCount": stored.get("stateCandidateCount", 0),
        "substrateProvider": stored.get("substrateProvider"),
    }


def run_doc(run: Run) -> dict[str, Any]:
    evidence = public_evidence(run.evidence)
    return {
        "id": run.id,
        "agentId": run.agent_id,
        "status": run.status,
        "createdAt": iso_millis(run.created_at),
        "startedAt": iso_millis(run.started_at),
        "completedAt": iso_millis(run.completed_at),
        "updatedAt": iso_millis(run.updated_at),
        "harness": {"requested": run.harness_requested, "resolved": run.harness_resolved},
        "request": {
            "harness": run.request.get("harness"),
            "timeoutSeconds": run.request.get("timeoutSeconds"),
        },
        "output": run.output,
        "error": {
            "code": run.error.code,
            "message": run.error.message,
            "retryable": run.error.retryable,
        },
        "warnings": run.warnings,
        "tokenUsage": _only(EMPTY_TOKEN_USAGE, run.token_usage),
        "toolUsage": _only(EMPTY_TOOL_USAGE, run.tool_usage),
        "evidence": evidence,
        "source": run.source,
        "title": run.title,
    }


def status_doc(agent: Agent) -> dict[str, Any]:
    status = agent.environment.status
    return {"daemonVersion": __version__, "ok": status == "ready", "status": status}


def base_url(request: Request) -> str:
    """This server as the client reached it, for absolute links in answers."""
    return str(request.base_url).rstrip("/")
