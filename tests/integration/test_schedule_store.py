"""Schedule storage on both backends: tenancy in every query, due selection, one fire
per tick however many workers race for it, fire records, and cascade on agent delete."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from runyard.domain.schedules import Schedule
from runyard.store.base import Store
from runyard.types import new_id
from tests.integration import factories as f


def _sched(ws_id: str, agent_id: str, *, next_run_at: int | None = 5_000) -> Schedule:
    return Schedule(
        id=new_id("sched"),
        workspace_id=ws_id,
        agent_id=agent_id,
        name="nightly",
        cron="0 3 * * *",
        timezone="Europe/Paris",
        prompt="summarize",
        enabled=True,
        paused=False,
        created_at=1_000,
        updated_at=1_000,
        next_run_at=next_run_at,
        harness="shell",
        timeout_seconds=30,
    )


def test_crud_is_scoped_by_workspace_and_agent(store: Store) -> None:
    ws, other = f.workspace(store), f.workspace(store)
    a = f.agent(store, ws)
    b = f.agent(store, ws)
    s = _sched(ws.id, a.id)
    assert store.insert_schedule(s)
    assert not store.insert_schedule(_sched(other.id, a.id))  # agent not in that workspace
    assert store.get_schedule(ws.id, a.id, s.id) == s
    assert store.get_schedule(other.id, a.id, s.id) is None
    assert store.get_schedule(ws.id, b.id, s.id) is None
    assert store.list_schedules(ws.id, a.id) == [s]
    assert store.list_schedules(ws.id, b.id) == []
    assert store.count_schedules(ws.id, a.id) == 1
    assert store.update_schedule(other.id, a.id, s.id, {"name": "x"}, 2_000) is None
    got = store.update_schedule(ws.id, a.id, s.id, {"name": "x", "paused": True}, 2_000)
    assert got is not None and got.name == "x" and got.paused and got.updated_at == 2_000
    assert not store.delete_schedule(other.id, a.id, s.id)
    assert not store.delete_schedule(ws.id, b.id, s.id)
    assert store.delete_schedule(ws.id, a.id, s.id)
    assert store.get_schedule(ws.id, a.id, s.id) is None


def test_only_active_due_schedules_are_selected(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    due = _sched(ws.id, a.id, next_run_at=5_000)
    later = _sched(ws.id, a.id, next_run_at=9_000)
    paused = _sched(ws.id, a.id, next_run_at=4_000)
    unscheduled = _sched(ws.id, a.id, next_run_at=None)
    for s in (due, later, paused, unscheduled):
        assert store.insert_schedule(s)
    store.update_schedule(ws.id, a.id, paused.id, {"paused": True}, 2_000)
    assert [s.id for s in store.due_schedules(6_000, 10)] == [due.id]
    # A paused schedule's tick cannot be claimed, even with the value read before.
    assert not store.claim_schedule(paused.id, 4_000, 10_000)


def test_a_tick_fires_once_under_concurrency(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    s = _sched(ws.id, a.id, next_run_at=5_000)
    assert store.insert_schedule(s)
    peers = [f.peer(store) for _ in range(3)]
    stores = [store, *peers]
    threads = 12
    try:
        for tick in range(4):
            due_at = 5_000 + tick * 1_000
            store.update_schedule(ws.id, a.id, s.id, {"next_run_at": due_at}, 2_000)
            barrier = threading.Barrier(threads)

            def race(i: int, due_at: int = due_at, barrier: threading.Barrier = barrier) -> int:
                mine = stores[i % len(stores)]
                barrier.wait()
                wins = 0
                for row in mine.due_schedules(due_at, 10):
                    assert row.next_run_at == due_at
                    wins += mine.claim_schedule(row.id, due_at, due_at + 60_000)
                return wins

            with ThreadPoolExecutor(threads) as pool:
                total = sum(pool.map(race, range(threads)))
            assert total == 1, f"tick {tick} fired {total} times"
            got = store.get_schedule(ws.id, a.id, s.id)
            assert got is not None and got.next_run_at == due_at + 60_000
    finally:
        for p in peers:
            p.close()


def test_fire_records_and_agent_delete_cascades(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    s = _sched(ws.id, a.id)
    assert store.insert_schedule(s)
    store.record_schedule_fire(s.id, None, "NOT_FOUND: gone", 3_000)
    got = store.get_schedule(ws.id, a.id, s.id)
    assert got is not None and got.last_spawn_error == "NOT_FOUND: gone"
    assert got.last_ran_at is None
    store.record_schedule_fire(s.id, "run_1", None, 4_000)
    got = store.get_schedule(ws.id, a.id, s.id)
    assert got is not None
    assert (got.last_spawn_error, got.last_run_id, got.last_ran_at) == (None, "run_1", 4_000)
    assert store.delete_agent(ws.id, a.id, 5_000)
    assert store.list_schedules(ws.id, a.id) == []
    assert store.due_schedules(10**13, 10) == []
