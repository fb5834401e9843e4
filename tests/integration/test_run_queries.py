"""The surfaces' run listings on both backends: filters in SQL, tenancy, keyset paging."""

from __future__ import annotations

from dataclasses import replace

from runyard.store.base import Store
from runyard.store.events_queries import RunFilter
from runyard.store.run_queries import RunQuery
from tests.integration import factories as f


def _seed(store: Store) -> tuple[str, str, list[str], list[str], str]:
    ws, other = f.workspace(store), f.workspace(store)
    a, b = f.agent(store, ws, slug="alpha"), f.agent(store, ws, slug="beta")
    stranger = f.agent(store, other)
    ids_a, ids_b = [], []
    for i in range(7):
        run = replace(f.run_entity(a), source="API" if i % 2 else "SCHEDULED_AGENT")
        store.insert_run(run, concurrency_limit=1)
        ids_a.append(run.id)
    for _ in range(3):
        run = f.run_entity(b)
        store.insert_run(run, concurrency_limit=1)
        ids_b.append(run.id)
    store.insert_run(f.run_entity(stranger), concurrency_limit=1)
    oldest = min((a, b), key=lambda agent: (agent.created_at, agent.id))
    return ws.id, a.id, ids_a, ids_b, oldest.id


def test_warp_listing_filters_and_pages_without_gaps(store: Store) -> None:
    ws_id, _, ids_a, ids_b, oldest_id = _seed(store)
    seen: list[str] = []
    q = RunQuery(workspace_id=ws_id, limit=3)
    while True:
        page = store.query_runs(q)
        seen += [item.run.id for item in page]
        if len(page) < q.limit:
            break
        last = page[-1].run
        q = replace(q, after=(last.created_at, last.seq))
    assert sorted(seen) == sorted(ids_a + ids_b) and len(seen) == len(set(seen))
    only_alpha = store.query_runs(RunQuery(workspace_id=ws_id, limit=50, agent_slug="alpha"))
    assert {i.run.id for i in only_alpha} == set(ids_a)
    assert {i.agent_slug for i in only_alpha} == {"alpha"}
    scheduled = store.query_runs(
        RunQuery(workspace_id=ws_id, limit=50, sources=("SCHEDULED_AGENT",))
    )
    assert len(scheduled) == 4
    assert store.query_runs(RunQuery(workspace_id=ws_id, limit=50, statuses=("running",))) == []
    oldest = store.oldest_agent(ws_id)
    assert oldest is not None and oldest.id == oldest_id  # created_at, then id


def test_uragents_listing_filters_and_pages_without_gaps(store: Store) -> None:
    ws_id, agent_id, ids_a, _, _ = _seed(store)
    seen: list[str] = []
    where = RunFilter(agent_id=agent_id)
    while True:
        page = store.filter_runs(ws_id, where, 2)
        seen += [r.id for r in page]
        if len(page) < 2:
            break
        where = replace(where, before_seq=page[-1].seq)
    assert seen == list(reversed(ids_a))  # newest first, no gaps
    assert store.filter_runs(ws_id, RunFilter(statuses=["completed"]), 10) == []
    assert store.filter_runs(ws_id, RunFilter(started_after=0), 10) == []  # none started
    assert store.filter_runs("ws_other", RunFilter(), 10) == []
