"""Capability declarations of an agent: list, add, update, remove.

Every call is scoped by the caller's workspace and the agent's slug. A change
is validated as a whole declaration (see :mod:`runyard.domain.capabilities`),
saved with the agent's bumped ``stateVersion`` and queues reconciliation of a
ready environment, which the worker applies (see
:mod:`runyard.environments.reconcile`). Answers carry the state version, the
capability list, and the names of secrets the capabilities need that are not
bound to the agent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.domain.capabilities import (
    MAX_PER_AGENT,
    Capability,
    SkillDecl,
    SourceKind,
    classify_source,
    declare,
    spec_of,
)
from runyard.domain.entities import Agent
from runyard.errors import BadRequest, Conflict, NotFound
from runyard.store.base import Store
from runyard.types import new_id, now_millis

SKILLS_DIR_ENV = "RUNYARD_SKILLS_DIR"


def skills_root() -> Path | None:
    """The operator's root for local skill sources (``RUNYARD_SKILLS_DIR``), if set."""
    raw = os.environ.get(SKILLS_DIR_ENV, "").strip()
    return Path(raw).resolve() if raw else None


def local_source_path(source: str, root: Path) -> Path:
    """A local source (relative to ``root``, or absolute) resolved; ``ValueError`` if outside."""
    kind = classify_source(source)
    text = source.removeprefix("file://") if kind is SourceKind.GIT else source
    path = (root / text).resolve() if not text.startswith("/") else Path(text).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"source must be inside the operator's skills root ({SKILLS_DIR_ENV})")
    return path


@dataclass(frozen=True)
class CapabilityState:
    version: int
    capabilities: list[Capability]
    missing_secrets: list[str]


class CapabilityService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _agent(self, workspace_id: str, slug: str) -> Agent:
        agent = self._store.get_agent(workspace_id, slug=slug)
        if agent is None:
            raise NotFound(f"agent {slug!r} not found")
        return agent

    def state(self, workspace_id: str, slug: str) -> CapabilityState:
        agent = self._agent(workspace_id, slug)
        return self._state(agent)

    def _state(self, agent: Agent) -> CapabilityState:
        version = self._store.capability_version(agent.workspace_id, agent.id)
        if version is None:
            raise NotFound(f"agent {agent.slug!r} not found")
        caps = self._store.list_capabilities(agent.workspace_id, agent.id)
        return CapabilityState(version, caps, self._missing(agent, caps))

    def _missing(self, agent: Agent, caps: list[Capability]) -> list[str]:
        needed = sorted({n for c in caps if c.status == "declared" for n in c.required_secrets()})
        missing = []
        for name in needed:
            secret = self._store.get_secret(agent.workspace_id, name)
            if secret is None or agent.id not in secret.agent_ids:
                missing.append(name)
        return missing

    @staticmethod
    def _check_local(decl: Any) -> None:
        """Refuse local and file:// skill sources outside the skills root early (400)."""
        if not isinstance(decl, SkillDecl):
            return
        kind = classify_source(decl.source)
        if kind is SourceKind.ARCHIVE:
            return
        if kind is SourceKind.GIT and not decl.source.startswith("file://"):
            return
        root = skills_root()
        if root is None:
            raise BadRequest(
                "capability.source: local and file:// skill sources need the operator to"
                f" configure {SKILLS_DIR_ENV}",
                {"field": "capability.source"},
            )
        try:
            local_source_path(decl.source, root)
        except ValueError as exc:
            raise BadRequest(f"capability.source: {exc}", {"field": "capability.source"}) from exc

    def create(self, workspace_id: str, slug: str, fields: dict[str, Any]) -> CapabilityState:
        agent = self._agent(workspace_id, slug)
        decl = declare(fields)
        self._check_local(decl)
        if len(self._store.list_capabilities(workspace_id, agent.id)) >= MAX_PER_AGENT:
            raise Conflict(f"an agent may declare at most {MAX_PER_AGENT} capabilities")
        now = now_millis()
        cap = Capability(
            id=new_id("capability"),
            workspace_id=workspace_id,
            agent_id=agent.id,
            kind=decl.kind,
            name=decl.name,
            status=decl.status.value,
            spec=spec_of(decl),
            created_at=now,
            updated_at=now,
        )
        if self._store.save_capability(cap, create=True, now=now) is None:
            raise NotFound(f"agent {slug!r} not found")
        return self._state(agent)

    def _existing(self, agent: Agent, capability_id: str) -> Capability:
        cap = self._store.get_capability(agent.workspace_id, agent.id, capability_id)
        if cap is None:
            raise NotFound(f"capability {capability_id!r} not found")
        return cap

    def update(
        self, workspace_id: str, slug: str, capability_id: str, patch: dict[str, Any]
    ) -> CapabilityState:
        agent = self._agent(workspace_id, slug)
        cap = self._existing(agent, capability_id)
        if "kind" in patch and patch["kind"] != cap.kind:
            raise BadRequest(
                "capability.kind cannot be changed; remove the capability and add a new one",
                {"field": "capability.kind"},
            )
        decl = declare({**cap.wire(), **patch})
        self._check_local(decl)
        now = max(now_millis(), cap.updated_at + 1)  # evidence is fenced by updated_at
        changed = Capability(
            id=cap.id,
            workspace_id=workspace_id,
            agent_id=agent.id,
            kind=cap.kind,
            name=decl.name,
            status=decl.status.value,
            spec=spec_of(decl),
            created_at=cap.created_at,
            updated_at=now,
        )
        if self._store.save_capability(changed, create=False, now=now) is None:
            raise NotFound(f"capability {capability_id!r} not found")
        return self._state(agent)

    def delete(self, workspace_id: str, slug: str, capability_id: str) -> CapabilityState:
        agent = self._agent(workspace_id, slug)
        if (
            self._store.delete_capability(workspace_id, agent.id, capability_id, now_millis())
            is None
        ):
            raise NotFound(f"capability {capability_id!r} not found")
        return self._state(agent)
