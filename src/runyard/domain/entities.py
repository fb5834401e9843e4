"""Entities as the store hands them to services: plain frozen dataclasses.

They carry storage-level facts (ids, millisecond times, JSON documents).
Rendering them for a surface (camelCase, ISO times, support-safe subsets) is
the job of the API layer, never of these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runyard.domain.canvas import Artifact, Step
from runyard.types import JSON

# Where a run came from. Clients name theirs with ``X-Runyard-Source``; the
# scheduler's runs are ``SCHEDULED_AGENT``, which no client may claim.
RUN_SOURCES = ("API", "CLI", "SCHEDULED_AGENT", "WEB_APP")
CLIENT_SOURCES = ("API", "CLI", "WEB_APP")
SOURCE_HEADER = "X-Runyard-Source"


class KeyKind(StrEnum):
    WORKSPACE = "workspace"
    USER = "user"
    AGENT = "agent"


@dataclass(frozen=True)
class Workspace:
    id: str
    slug: str
    created_at: int


@dataclass(frozen=True)
class ApiKey:
    id: str
    workspace_id: str
    kind: KeyKind
    name: str
    prefix: str
    secret_hash: str
    created_at: int
    agent_id: str | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None


@dataclass(frozen=True)
class Environment:
    status: str
    attention: str
    created_at: int
    updated_at: int
    ready_at: int | None = None
    last_error: str | None = None
    reconciliation_status: str = "applied"
    reconciliation_error: str | None = None


@dataclass(frozen=True)
class Agent:
    id: str
    workspace_id: str
    name: str
    slug: str
    created_at: int
    updated_at: int
    model_policy: JSON
    harness_targets: list[JSON]
    capability_bindings: list[JSON]
    runtime_policy: JSON
    environment: Environment


@dataclass(frozen=True)
class RunError:
    code: str | None = None
    message: str | None = None
    retryable: bool | None = None


@dataclass(frozen=True)
class Run:
    id: str
    workspace_id: str
    agent_id: str
    status: str
    created_at: int
    updated_at: int
    input: str
    harness_requested: str | None
    harness_resolved: str | None
    request: JSON
    timeout_seconds: int
    attempt: int = 0
    max_attempts: int = 1
    seq: int = 0
    started_at: int | None = None
    completed_at: int | None = None
    output: str | None = None
    error: RunError = field(default_factory=RunError)
    warnings: list[str] | None = None
    token_usage: JSON | None = None
    tool_usage: JSON | None = None
    evidence: JSON | None = None
    session_id: str | None = None
    source: str = "API"
    title: str | None = None
    creator: str | None = None
    team: bool = False
    lease_owner: str | None = None
    lease_token: str | None = None
    lease_expires_at: int | None = None


@dataclass(frozen=True)
class RunEvent:
    """One entry of a run's append-only event log, numbered 1, 2, … per run."""

    run_id: str
    seq: int
    type: str
    data: JSON
    created_at: int


@dataclass(frozen=True)
class RunOutcome:
    """What a worker reports when it finishes a run (before status is written)."""

    status: str
    output: str | None = None
    error: RunError = field(default_factory=RunError)
    warnings: list[str] | None = None
    token_usage: JSON | None = None
    tool_usage: JSON | None = None
    evidence: JSON | None = None
    session_id: str | None = None
    harness_resolved: str | None = None
    # Tool calls the harness reported (``name, startedAt, completedAt, ok, output``).
    tool_calls: list[dict[str, Any]] | None = None
    # The canvas steps not yet stored and the artifacts, written with the status.
    steps: list[Step] | None = None
    artifacts: list[Artifact] | None = None


@dataclass(frozen=True)
class Secret:
    """A workspace secret; ``ciphertext`` is only ever opened by the worker."""

    id: str
    workspace_id: str
    name: str
    projection_name: str
    ciphertext: str
    value_length: int
    agent_ids: list[str]
    created_at: int
    updated_at: int
