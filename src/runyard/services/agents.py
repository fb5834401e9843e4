"""Agents and their environment record: create, read, rename, re-harness, delete.

Every call is scoped by the caller's workspace id; an agent of another
workspace is simply not found. Creating an agent queues its environment for
provisioning (``pending``); harness changes on a ready environment move its
runtime reconciliation to ``pending`` for the worker to apply. A PATCH of
``modelPolicy`` or ``runtimePolicy`` is a merge patch: fields the client
leaves out keep their current values instead of falling back to defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from runyard.domain.entities import Agent, Environment
from runyard.domain.naming import slugify
from runyard.domain.policies import (
    HarnessTarget,
    ModelPolicy,
    RuntimePolicy,
    default_harness_targets,
)
from runyard.domain.requests import AgentCreate, AgentPatch, HarnessUpdate
from runyard.errors import BadRequest, Conflict, NotFound
from runyard.store.base import Store
from runyard.types import new_id, now_millis

_LIFECYCLE_BUSY = ("provisioning", "deleting")


def dump_targets(targets: list[HarnessTarget]) -> list[dict[str, Any]]:
    return [t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in targets]


def _set_fields(model: BaseModel) -> dict[str, Any]:
    """Only what the client wrote (wire names), so a PATCH leaves the rest as it is."""
    return model.model_dump(by_alias=True, mode="json", exclude_unset=True)


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396) without deletion: objects merge, other values replace."""
    out = dict(current)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


def _revalidate(model: type[BaseModel], merged: dict[str, Any], field: str) -> dict[str, Any]:
    """Validate a merged policy as a whole; a combination that breaks a rule is a 400."""
    try:
        return model.model_validate(merged).model_dump(by_alias=True, mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in (field, *first.get("loc", ())))
        raise BadRequest(f"{where}: {first.get('msg', 'invalid value')}", {"field": where}) from exc


def parse_runtime_policy(agent: Agent) -> RuntimePolicy:
    return RuntimePolicy.model_validate(agent.runtime_policy)


class AgentService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, workspace_id: str, body: AgentCreate) -> Agent:
        now = now_millis()
        slug = body.slug or slugify(body.name)
        if not slug:
            raise BadRequest("cannot derive a slug from this name; pass 'slug'")
        targets = (
            body.harness_targets
            if body.harness_targets is not None
            else default_harness_targets(
                body.model_policy is not None
                and body.model_policy.provider is not None
                and body.model_policy.model is not None
            )
        )
        agent = Agent(
            id=new_id("agent"),
            workspace_id=workspace_id,
            name=body.name,
            slug=slug,
            created_at=now,
            updated_at=now,
            model_policy=(body.model_policy or ModelPolicy()).model_dump(
                by_alias=True, mode="json"
            ),
            harness_targets=dump_targets(targets),
            capability_bindings=[],
            runtime_policy=(body.runtime_policy or RuntimePolicy()).model_dump(
                by_alias=True, mode="json"
            ),
            environment=Environment(
                status="pending", attention="none", created_at=now, updated_at=now
            ),
        )
        self._store.insert_agent(agent)
        return agent

    def get(self, workspace_id: str, slug: str) -> Agent:
        agent = self._store.get_agent(workspace_id, slug=slug)
        if agent is None:
            raise NotFound(f"agent {slug!r} not found")
        return agent

    def get_by_id(self, workspace_id: str, agent_id: str) -> Agent:
        agent = self._store.get_agent(workspace_id, agent_id=agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id!r} not found")
        return agent

    def list(self, workspace_id: str, limit: int, before_id: str | None) -> list[Agent]:
        return self._store.list_agents(workspace_id, limit, before_id)

    def patch(self, workspace_id: str, slug: str, body: AgentPatch) -> Agent:
        agent = self.get(workspace_id, slug)
        changes: dict[str, Any] = {}
        if body.name is not None:
            changes["name"] = body.name
            changes["slug"] = body.slug or slugify(body.name)
        elif body.slug is not None:
            changes["slug"] = body.slug
        if body.model_policy is not None:
            merged = merge_patch(agent.model_policy, _set_fields(body.model_policy))
            changes["model_policy"] = _revalidate(ModelPolicy, merged, "modelPolicy")
        if body.runtime_policy is not None:
            merged = merge_patch(agent.runtime_policy, _set_fields(body.runtime_policy))
            changes["runtime_policy"] = _revalidate(RuntimePolicy, merged, "runtimePolicy")
        return self._update(agent, changes)

    def set_harnesses(self, workspace_id: str, slug: str, body: HarnessUpdate) -> Agent:
        agent = self.get(workspace_id, slug)
        changes: dict[str, Any] = {"harness_targets": dump_targets(body.harness_targets)}
        if agent.environment.status == "ready":
            # Capabilities are projected per harness: a reconciliation in flight
            # no longer covers this agent (bumped before the write, see store).
            self._store.bump_reconciliation(agent.id)
            changes["recon_status"] = "pending"
            changes["recon_error"] = None
            # The environment's own record changed too: its updatedAt says so.
            changes["env_updated_at"] = now_millis()
        return self._update(agent, changes)

    def _update(self, agent: Agent, changes: dict[str, Any]) -> Agent:
        updated = self._store.update_agent(agent.workspace_id, agent.id, changes, now_millis())
        if updated is None:
            raise NotFound(f"agent {agent.slug!r} not found")
        return updated

    def delete(self, workspace_id: str, slug: str, confirmation_slug: str) -> Agent:
        agent = self.get(workspace_id, slug)
        if confirmation_slug != agent.slug:
            raise BadRequest(
                "confirmationSlug must equal the agent's current slug",
                {"field": "confirmationSlug", "expected": agent.slug},
            )
        if agent.environment.status in _LIFECYCLE_BUSY:
            raise Conflict(
                f"the agent's environment is {agent.environment.status}; retry when it settles",
                {"environmentStatus": agent.environment.status, "retryable": True},
            )
        if not self._store.delete_agent(workspace_id, agent.id, now_millis()):
            raise NotFound(f"agent {slug!r} not found")
        return agent
