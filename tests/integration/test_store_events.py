"""Store contract: the per-run event log, idempotent submits and cancels.

Runs on SQLite and PostgreSQL. Every status change appends its event in the
same transaction, numbered 1, 2, … per run; idempotency is decided by the
unique constraint, including for concurrent duplicates.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from runyard.store.base import Store
from runyard.types import new_id, now_millis
from tests.integration import factories as f


def _kinds(store: Store, ws_id: str, run_id: str) -> list[tuple[str, str | None]]:
    events = store.list_events(ws_id, run_id, 0, 100)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    return [(e.type, e.data.get("status")) for e in events]


def test_lifecycle_events_are_numbered_and_never_hold_the_prompt(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a)
    got, token = f.claim_one(store)
    assert store.start_run(got.id, token, now_millis(), "shell", None)
    assert store.finish_run(got.id, token, f.completed("the answer"), now_millis())
    assert _kinds(store, ws.id, r.id) == [
        ("status", "queued"),
        ("status", "claimed"),
        ("status", "running"),
        ("output", None),
        ("status", "completed"),
    ]
    events = store.list_events(ws.id, r.id, 0, 100)
    assert events[3].data == {"text": "the answer"}
    assert events[4].data["outputLength"] == len("the answer")
    assert all(r.input not in str(e.data) for e in events)
    assert [e.seq for e in store.list_events(ws.id, r.id, 2, 2)] == [3, 4]
    other = f.workspace(store)
    assert store.list_events(other.id, r.id, 0, 100) == []


def test_reaper_and_agent_delete_write_events(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a, max_attempts=1)
    f.claim_one(store, lease_ms=10)
    store.reap_expired(now_millis() + 60_000, max_claims=3)
    assert _kinds(store, ws.id, r.id)[-1] == ("status", "queued")
    queued = f.run(store, a)
    store.delete_agent(ws.id, a.id, now_millis())
    assert _kinds(store, ws.id, queued.id)[-1] == ("status", "cancelled")


def test_cancel_queued_active_and_terminal(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    queued = f.run(store, a, limit=1)
    done = store.cancel_run(ws.id, a.id, queued.id, now_millis())
    assert done is not None and done.action == "cancelled" and done.run.status == "cancelled"
    assert f.claim(store)[0] is None  # a cancelled run is never claimed
    again = store.cancel_run(ws.id, a.id, queued.id, now_millis())
    assert again is not None and again.action == "unchanged"
    active = f.run(store, a, limit=1)
    got, token = f.claim_one(store)
    req = store.cancel_run(ws.id, a.id, active.id, now_millis())
    assert req is not None and req.action == "requested" and req.run.status == "claimed"
    assert store.renew_lease(got.id, token, now_millis() + 1000, now_millis()).cancel_requested
    assert _kinds(store, ws.id, active.id)[-1] == ("cancel_requested", None)
    assert store.cancel_run(ws.id, "agent_other", active.id, now_millis()) is None


def test_idempotent_insert_same_key_returns_the_first_run(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    first = f.run_entity(a)
    made = store.insert_run_idempotent(first, 1, "k1", "h1")
    assert made.created and made.run.id == first.id
    second = replace(f.run_entity(a), id=new_id("run"))
    again = store.insert_run_idempotent(second, 1, "k1", "h2")
    assert not again.created and again.run.id == first.id and again.request_hash == "h1"
    assert store.get_run(ws.id, second.id) is None
    assert len(store.list_runs(ws.id, a.id, 10, None)) == 1


def test_concurrent_duplicate_submits_make_one_run(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)

    def submit(_: int) -> str:
        return store.insert_run_idempotent(f.run_entity(a), 1, "dup", "h").run.id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(submit, range(8)))
    assert len(ids) == 1
    assert [r.id for r in store.list_runs(ws.id, a.id, 10, None)] == list(ids)
