"""Capability storage on both backends: tenancy, versions, bindings, fenced evidence
and a reconciliation that is only marked applied if nothing changed meanwhile."""

from __future__ import annotations

import pytest

from runyard.domain.capabilities import Capability
from runyard.domain.entities import Agent, Environment, Workspace
from runyard.errors import Conflict
from runyard.store.base import Store
from runyard.types import new_id, now_millis


def _setup(store: Store) -> tuple[Workspace, Agent]:
    now = now_millis()
    ws = Workspace(id=new_id("ws"), slug=f"w{now}", created_at=now)
    store.create_workspace(ws)
    agent = Agent(
        id=new_id("agent"),
        workspace_id=ws.id,
        name="A",
        slug="a",
        created_at=now,
        updated_at=now,
        model_policy={},
        harness_targets=[],
        capability_bindings=[],
        runtime_policy={},
        environment=Environment(status="ready", attention="none", created_at=now, updated_at=now),
    )
    store.insert_agent(agent)
    return ws, agent


def _cap(ws: Workspace, agent: Agent, name: str = "bash") -> Capability:
    now = now_millis()
    return Capability(
        id=new_id("capability"),
        workspace_id=ws.id,
        agent_id=agent.id,
        kind="cli",
        name=name,
        status="declared",
        spec={"source": "system"},
        created_at=now,
        updated_at=now,
    )


def test_versions_bindings_and_tenancy(store: Store) -> None:
    ws, agent = _setup(store)
    cap = _cap(ws, agent)
    assert store.save_capability(cap, create=True, now=now_millis()) == 1
    with pytest.raises(Conflict):
        store.save_capability(_cap(ws, agent), create=True, now=now_millis())
    got = store.get_agent(ws.id, agent_id=agent.id)
    assert got is not None
    assert got.capability_bindings == [
        {"capabilityId": cap.id, "kind": "cli", "name": "bash", "status": "declared"}
    ]
    assert got.environment.reconciliation_status == "pending"
    other = "ws_other"
    assert store.get_capability(other, agent.id, cap.id) is None
    assert store.list_capabilities(other, agent.id) == []
    assert store.delete_capability(other, agent.id, cap.id, now_millis()) is None
    assert store.save_capability(_cap(ws, agent, "x"), create=True, now=1) == 2
    assert store.capability_version(ws.id, agent.id) == 2
    assert store.delete_capability(ws.id, agent.id, cap.id, now_millis()) == 3


def test_reconciliation_and_evidence_are_fenced(store: Store) -> None:
    ws, agent = _setup(store)
    cap = _cap(ws, agent)
    store.save_capability(cap, create=True, now=cap.updated_at)
    generation = store.reconciliation_generation(agent.id)
    assert generation is not None
    # A change while the worker applies: its result must not be marked applied.
    changed = Capability(**{**cap.__dict__, "status": "disabled", "updated_at": cap.updated_at + 1})
    store.save_capability(changed, create=False, now=changed.updated_at)
    assert not store.record_capability_evidence(cap.id, cap.updated_at, "validated", None, 1)
    assert not store.finish_reconciliation(agent.id, generation, "applied", None, now_millis())
    latest = store.reconciliation_generation(agent.id)
    assert latest is not None
    assert store.record_capability_evidence(cap.id, changed.updated_at, None, None, 2)
    assert store.finish_reconciliation(agent.id, latest, "applied", None, now_millis())
    got = store.get_agent(ws.id, agent_id=agent.id)
    assert got is not None and got.environment.reconciliation_status == "applied"
