"""Environment teardowns: deleting an agent leaves a row the worker works off."""

from __future__ import annotations

from runyard.store.base import Store
from runyard.types import now_millis
from tests.integration import factories as f


def test_delete_records_a_teardown_until_it_is_done(store: Store) -> None:
    ws, other = f.workspace(store), f.workspace(store)
    agent, kept = f.agent(store, ws), f.agent(store, ws)
    assert store.pending_teardowns(10) == []
    assert not store.delete_agent(other.id, agent.id, now_millis())  # tenancy: nothing queued
    assert store.pending_teardowns(10) == []
    assert store.delete_agent(ws.id, agent.id, now_millis())
    assert store.pending_teardowns(10) == [agent.id]
    store.finish_teardown(agent.id, done=False)  # busy: retried later
    assert store.pending_teardowns(10) == [agent.id]
    store.finish_teardown(agent.id, done=True)
    assert store.pending_teardowns(10) == []
    assert store.get_agent(ws.id, agent_id=kept.id) is not None
