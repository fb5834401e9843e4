"""Store contract, part 2: the runs table as a queue, leases with fencing, the reaper.

Runs on SQLite and PostgreSQL. Times are passed explicitly (the store takes
``now`` and ``lease_until`` from its caller), so lease expiry is tested by
handing the reaper a later clock, never by sleeping.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from runyard.domain.entities import RunOutcome
from runyard.store.base import Store
from runyard.types import now_millis
from tests.integration import factories as f

# ---- client side: insert, read, page ------------------------------------------------


def test_insert_and_get_run(store: Store) -> None:
    ws = f.workspace(store)
    a, b = f.agent(store, ws), f.agent(store, ws)
    r = f.run(store, a)
    got = f.current(store, r)
    assert got.seq > 0
    assert got == replace(r, seq=got.seq)
    assert store.get_run(ws.id, r.id, agent_id=a.id) == got
    assert store.get_run(ws.id, r.id, agent_id=b.id) is None
    assert store.get_run(ws.id, "run_missing") is None
    assert store.run_status(r.id) == "queued"
    assert store.run_status("run_missing") is None


def test_list_runs_newest_first_and_by_agent(store: Store) -> None:
    ws = f.workspace(store)
    a, b = f.agent(store, ws), f.agent(store, ws)
    made = [f.run(store, a if i % 2 else b) for i in range(6)]
    listed = store.list_runs(ws.id, None, 100, None)
    assert [r.id for r in listed] == [r.id for r in reversed(made)]
    seqs = [r.seq for r in listed]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 6
    only_a = store.list_runs(ws.id, a.id, 100, None)
    assert [r.id for r in only_a] == [r.id for r in reversed(made) if r.agent_id == a.id]
    assert len(store.list_runs(ws.id, None, 4, None)) == 4


def _page_all(store: Store, ws_id: str, size: int, between: int = 0) -> list[str]:
    """Walk every page; insert ``between`` new runs after each page."""
    seen: list[str] = []
    before = None
    while True:
        page = store.list_runs(ws_id, None, size, before)
        if not page:
            return seen
        seen += [r.id for r in page]
        before = page[-1].seq
        for _ in range(between):
            f.run(store, store.list_agents(ws_id, 1, None)[0])


def test_cursor_pages_have_no_duplicates_or_gaps(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    made = [f.run(store, a).id for _ in range(23)]
    for size in (1, 5, 23, 50):
        assert _page_all(store, ws.id, size) == list(reversed(made))


def test_cursor_pages_stay_exact_while_runs_are_inserted(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    made = [f.run(store, a).id for _ in range(17)]
    # runs inserted between pages are newer than the cursor: they never show up
    # in later pages, and no older run is skipped or repeated
    assert _page_all(store, ws.id, 4, between=2) == list(reversed(made))
    assert len(store.list_runs(ws.id, None, 100, None)) == 17 + 2 * 5


# ---- claiming ---------------------------------------------------------------------------


def test_claim_on_empty_queue(store: Store) -> None:
    assert f.claim(store)[0] is None


def test_claim_sets_lease_fields(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    got = store.claim_run("worker-7", "tok-1", 90_000, 30_000)
    assert got is not None and got.id == r.id
    assert (got.status, got.attempt) == ("claimed", 1)
    assert (got.lease_owner, got.lease_token, got.lease_expires_at) == ("worker-7", "tok-1", 90_000)
    assert got.updated_at == 30_000 and got.started_at is None
    assert f.current(store, r) == got


def test_claim_is_fifo(store: Store) -> None:
    ws = f.workspace(store)
    agents = [f.agent(store, ws) for _ in range(3)]
    made = [f.run(store, agents[i % 3], limit=5) for i in range(7)]
    claimed = [f.claim_one(store)[0].id for _ in made]
    assert claimed == [r.id for r in made]
    assert f.claim(store)[0] is None


def test_concurrency_limit_per_agent(store: Store) -> None:
    ws = f.workspace(store)
    a, b = f.agent(store, ws), f.agent(store, ws)
    a_runs = [f.run(store, a, limit=2) for _ in range(4)]
    b_run = f.run(store, b, limit=2)
    first, tok1 = f.claim_one(store)
    second, tok2 = f.claim_one(store)
    assert [first.id, second.id] == [a_runs[0].id, a_runs[1].id]
    # agent a is full: its queued runs are skipped, b's later run is not blocked
    assert f.claim_one(store)[0].id == b_run.id
    assert f.claim(store)[0] is None
    # a running run still counts against the limit
    assert store.start_run(first.id, tok1, 1, "shell", None)
    assert f.claim(store)[0] is None
    # finishing one frees exactly one slot
    assert store.finish_run(first.id, tok1, f.completed(), now_millis())
    assert f.claim_one(store)[0].id == a_runs[2].id
    assert f.claim(store)[0] is None
    assert store.finish_run(second.id, tok2, f.failed(), now_millis())
    assert f.claim_one(store)[0].id == a_runs[3].id


# ---- fencing ------------------------------------------------------------------------------


def test_start_run_is_fenced(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    got, token = f.claim_one(store)
    before = f.current(store, r)
    assert not store.start_run(r.id, "wrong", 5, "shell", {"x": 1})
    assert f.current(store, r) == before
    assert store.start_run(r.id, token, 5, "shell", {"substrateProvider": "process"})
    started = f.current(store, r)
    assert (started.status, started.started_at, started.harness_resolved) == ("running", 5, "shell")
    assert started.evidence == {"substrateProvider": "process"}
    assert not store.start_run(r.id, token, 6, "shell", None)  # only from claimed
    assert f.current(store, r) == started
    assert got.attempt == started.attempt == 1


def test_renew_lease_is_fenced(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    _, token = f.claim_one(store)
    before = f.current(store, r)
    assert store.renew_lease(r.id, "wrong", 10**13, 5).held is False
    assert f.current(store, r) == before
    state = store.renew_lease(r.id, token, 10**13, 5)
    assert state.held and not state.cancel_requested
    assert f.current(store, r).lease_expires_at == 10**13
    assert store.start_run(r.id, token, 6, "shell", None)
    assert store.renew_lease(r.id, token, 10**13 + 1, 7).held


def test_finish_run_is_fenced_and_final(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    _, token = f.claim_one(store)
    assert store.start_run(r.id, token, 5, "shell", None)
    before = f.current(store, r)
    assert not store.finish_run(r.id, "wrong", f.completed(), 9)
    assert f.current(store, r) == before
    assert store.finish_run(r.id, token, f.completed("hello"), 9)
    done = f.current(store, r)
    assert (done.status, done.output, done.completed_at) == ("completed", "hello", 9)
    assert done.warnings == ["w"] and done.session_id == "sess-2"
    assert done.token_usage == {"source": "provider_response", "totalTokens": 3}
    assert done.tool_usage == {"source": "harness", "toolCallCount": 1}
    assert (done.lease_token, done.lease_expires_at) == (None, None)
    # terminal states are final: the second finish, a renew and a start all fail
    assert not store.finish_run(r.id, token, f.failed(), 10)
    assert store.renew_lease(r.id, token, 10**13, 10).held is False
    assert not store.start_run(r.id, token, 10, "shell", None)
    assert f.current(store, r) == done


def test_finish_from_claimed(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    _, token = f.claim_one(store)
    # a run that never started cannot complete, but may fail (e.g. agent deleted)
    assert not store.finish_run(r.id, token, f.completed(), 5)
    assert store.finish_run(r.id, token, f.failed("agent_deleted"), 5)
    got = f.current(store, r)
    assert (got.status, got.error.code, got.error.retryable) == ("failed", "agent_deleted", False)


@pytest.mark.parametrize("status", ["queued", "claimed", "running", "bogus"])
def test_finish_with_a_non_terminal_status_is_refused(store: Store, status: str) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    _, token = f.claim_one(store)
    before = f.current(store, r)
    with pytest.raises(ValueError):
        store.finish_run(r.id, token, RunOutcome(status=status), 5)
    assert f.current(store, r) == before


def test_stale_worker_is_fenced_after_rescue(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    t0 = now_millis()
    _, stale = f.claim_one(store, "old", now=t0, lease_ms=1_000)
    assert store.reap_expired(t0 + 5_000, 5).requeued == [r.id]
    again, fresh = f.claim_one(store, "new", now=t0 + 5_000)
    assert again.attempt == 2 and again.lease_owner == "new"
    assert not store.start_run(r.id, stale, t0 + 5_001, "shell", None)
    assert not store.renew_lease(r.id, stale, t0 + 99_000, t0 + 5_001).held
    assert not store.finish_run(r.id, stale, f.completed(), t0 + 5_001)
    assert f.current(store, r) == again
    assert store.start_run(r.id, fresh, t0 + 5_002, "shell", None)
    assert store.finish_run(r.id, fresh, f.completed(), t0 + 5_003)


# ---- deleting an agent with runs --------------------------------------------------------


def test_delete_agent_cancels_queued_and_flags_active_runs(store: Store) -> None:
    ws = f.workspace(store)
    a, other = f.agent(store, ws), f.agent(store, ws)
    running = f.run(store, a, limit=3)
    claimed = f.run(store, a, limit=3)
    queued = [f.run(store, a, limit=1) for _ in range(2)]
    bystander = f.run(store, other)
    _, run_tok = f.claim_one(store)
    _, claim_tok = f.claim_one(store)
    assert store.start_run(running.id, run_tok, 5, "shell", None)

    assert store.delete_agent(ws.id, a.id, 1_234)
    for q in queued:
        got = f.current(store, q)
        assert (got.status, got.error.code, got.error.retryable) == (
            "cancelled",
            "agent_deleted",
            False,
        )
        assert got.completed_at == 1_234
    for active, token in ((running, run_tok), (claimed, claim_tok)):
        state = store.renew_lease(active.id, token, 10**13, 1_300)
        assert state.held and state.cancel_requested
    assert f.current(store, bystander).status == "queued"
    assert store.renew_lease(running.id, "wrong", 10**13, 1_300).held is False


# ---- the reaper ---------------------------------------------------------------------------


def test_reaper_requeues_an_expired_claim_then_gives_up(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    t = now_millis()
    for attempt in (1, 2):
        got, _ = f.claim_one(store, now=t, lease_ms=1_000)
        assert got.attempt == attempt
        t += 2_000
        result = store.reap_expired(t, 3)
        assert (result.requeued, result.failed) == ([r.id], [])
        back = f.current(store, r)
        assert (back.status, back.lease_token, back.lease_owner) == ("queued", None, None)
        assert back.attempt == attempt
    f.claim_one(store, now=t, lease_ms=1_000)  # the third claim reaches max_claims
    result = store.reap_expired(t + 2_000, 3)
    assert (result.requeued, result.failed) == ([], [r.id])
    got = f.current(store, r)
    assert (got.status, got.error.code, got.error.retryable) == ("failed", "worker_lost", True)
    assert f.claim(store)[0] is None


def test_reaper_fails_an_expired_running_run(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    t = now_millis()
    _, token = f.claim_one(store, now=t, lease_ms=1_000)
    assert store.start_run(r.id, token, t, "shell", None)
    result = store.reap_expired(t + 5_000, 5)
    assert (result.requeued, result.failed) == ([], [r.id])
    got = f.current(store, r)
    assert (got.status, got.error.code, got.error.retryable) == ("failed", "worker_lost", True)
    assert got.completed_at == t + 5_000
    assert (got.lease_token, got.lease_expires_at) == (None, None)
    # never re-run, and the lost worker cannot write any more
    assert f.claim(store)[0] is None
    assert not store.finish_run(r.id, token, f.completed(), t + 6_000)
    assert store.reap_expired(t + 9_000, 5) == type(result)(requeued=[], failed=[])


def test_reaper_requeues_a_running_run_with_attempts_left(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws), max_attempts=2)
    t = now_millis()
    _, token = f.claim_one(store, now=t, lease_ms=1_000)
    assert store.start_run(r.id, token, t, "shell", None)
    assert store.reap_expired(t + 5_000, 5).requeued == [r.id]
    back = f.current(store, r)
    assert (back.status, back.started_at, back.attempt) == ("queued", None, 1)
    again, token2 = f.claim_one(store, now=t + 5_000, lease_ms=1_000)
    assert again.attempt == 2
    assert store.start_run(r.id, token2, t + 5_000, "shell", None)
    assert store.reap_expired(t + 9_000, 5).failed == [r.id]
    assert f.current(store, r).error.code == "worker_lost"


def test_reaper_leaves_live_and_finished_runs_alone(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    runs = [f.run(store, a, limit=5) for _ in range(4)]
    t = now_millis()
    f.claim_one(store, now=t, lease_ms=60_000)
    _, tok_running = f.claim_one(store, now=t, lease_ms=60_000)
    _, tok_done = f.claim_one(store, now=t, lease_ms=1_000)
    assert store.start_run(runs[1].id, tok_running, t, "shell", None)
    assert store.start_run(runs[2].id, tok_done, t, "shell", None)
    assert store.finish_run(runs[2].id, tok_done, f.completed(), t + 1)
    before = [f.current(store, r) for r in runs]
    result = store.reap_expired(t + 30_000, 5)
    assert (result.requeued, result.failed, result.cancelled) == ([], [], [])
    assert [f.current(store, r) for r in runs] == before


def test_reaper_does_not_requeue_a_run_whose_cancel_was_requested(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    claimed = f.run(store, a, limit=2, max_attempts=3)
    running = f.run(store, a, limit=2, max_attempts=3)
    t = now_millis()
    f.claim_one(store, now=t, lease_ms=1_000)
    _, token = f.claim_one(store, now=t, lease_ms=1_000)
    assert store.start_run(running.id, token, t, "shell", None)
    assert store.delete_agent(ws.id, a.id, t + 1)
    # both workers died: neither run may come back to the queue of a deleted agent
    result = store.reap_expired(t + 5_000, 5)
    assert (result.requeued, result.failed) == ([], [])
    assert sorted(result.cancelled) == sorted([claimed.id, running.id])
    for r in (claimed, running):
        got = f.current(store, r)
        assert (got.status, got.error.code, got.error.retryable) == (
            "cancelled",
            "cancelled",
            False,
        )
        assert got.completed_at == t + 5_000 and got.lease_token is None
    assert f.claim(store)[0] is None
