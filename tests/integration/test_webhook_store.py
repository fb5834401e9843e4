"""Webhook storage on both backends: tenancy in every query, the outbox written in the
run's status transaction (and rolled back with it), claims that lease each delivery to
exactly one dispatcher however many race, backoff, leases, and failure after the
last attempt."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from runyard.domain.entities import Agent, RunError, RunOutcome, Workspace
from runyard.domain.webhooks import EVENT_TYPES, Delivery, Webhook, payload
from runyard.store.base import Store
from runyard.store.postgres import PostgresStore
from runyard.store.webhooks import LOST_LEASE_ERROR
from runyard.types import new_id, now_millis
from tests.conftest import _truncate_pg
from tests.integration import factories as f

LATER = 10**15  # a "now" after every enqueued delivery is due


def _webhook(
    store: Store, ws: Workspace, events: tuple[str, ...] = EVENT_TYPES, enabled: bool = True
) -> Webhook:
    made = Webhook(
        id=new_id("wh"),
        workspace_id=ws.id,
        url="https://hooks.example.com/runyard",
        events=sorted(events),
        description="",
        enabled=enabled,
        secret_ciphertext="sealed",
        created_at=1_000,
        updated_at=1_000,
    )
    store.insert_webhook(made)
    return made


def _deliveries(store: Store, w: Webhook) -> list[Delivery]:
    return store.list_deliveries(w.workspace_id, w.id, 100, None)


def _run_through(store: Store, a: Agent, outcome: RunOutcome) -> str:
    """Queue, claim, start and finish one run of ``a``; returns its id."""
    run = f.run(store, a)
    claimed, token = f.claim_one(store)
    assert claimed.id == run.id
    assert store.start_run(run.id, token, now_millis(), "shell", None)
    assert store.finish_run(run.id, token, outcome, now_millis())
    return run.id


def test_crud_is_scoped_by_workspace(store: Store) -> None:
    ws, other = f.workspace(store), f.workspace(store)
    w = _webhook(store, ws, ("run.failed", "run.started"))
    assert store.get_webhook(ws.id, w.id) == w
    assert store.get_webhook(other.id, w.id) is None
    assert store.list_webhooks(ws.id) == [w]
    assert store.list_webhooks(other.id) == []
    assert store.count_webhooks(ws.id) == 1 and store.count_webhooks(other.id) == 0
    assert store.update_webhook(other.id, w.id, {"enabled": False}, 2_000) is None
    got = store.update_webhook(
        ws.id, w.id, {"enabled": False, "events": ["run.completed"], "url": "https://x.test"}, 2_000
    )
    assert got is not None and not got.enabled and got.events == ["run.completed"]
    assert got.url == "https://x.test" and got.updated_at == 2_000
    with pytest.raises(ValueError, match="not webhook columns"):
        store.update_webhook(ws.id, w.id, {"workspace_id": other.id}, 3_000)
    assert not store.delete_webhook(other.id, w.id)
    assert store.delete_webhook(ws.id, w.id)
    assert store.get_webhook(ws.id, w.id) is None


def test_status_changes_enqueue_their_events_with_a_run_snapshot(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws)
    run_id = _run_through(store, a, f.completed("secret output"))
    newest_first = _deliveries(store, w)
    assert [d.event_type for d in newest_first] == ["run.completed", "run.started"]
    completed, started = newest_first
    assert {d.status for d in newest_first} == {"pending"}
    assert {d.attempts for d in newest_first} == {0}
    assert started.run.id == run_id and started.run.agent_id == a.id
    assert started.run.status == "running" and started.run.started_at is not None
    assert started.run.completed_at is None
    assert completed.run.status == "completed" and completed.run.completed_at is not None
    assert completed.run.error_code is None and completed.run.source == "API"
    assert len({d.id for d in newest_first}) == 2
    assert all(d.id.startswith("whd_") for d in newest_first)
    doc = payload(completed)
    assert doc["type"] == "run.completed" and doc["id"] == completed.id
    assert doc["data"]["run"]["error"] is None
    text = repr(doc)
    assert "secret output" not in text and "echo hi" not in text  # no output, no prompt


@pytest.mark.parametrize(
    ("status", "event"),
    [("failed", "run.failed"), ("timed_out", "run.failed"), ("partial", "run.completed")],
)
def test_terminal_statuses_map_to_events(store: Store, status: str, event: str) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws)
    error = RunError(code="harness_failed", message="exit 3", retryable=False)
    if status == "partial":
        error = RunError()
    _run_through(store, a, RunOutcome(status=status, error=error))
    latest = _deliveries(store, w)[0]
    assert latest.event_type == event and latest.run.status == status
    run_doc = payload(latest)["data"]["run"]
    if status == "partial":
        assert run_doc["error"] is None
    else:
        assert run_doc["error"] == {
            "code": "harness_failed",
            "message": "exit 3",
            "retryable": False,
        }


def test_cancel_and_reap_raise_events(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws, slug="cancels")
    w = _webhook(store, ws)
    queued = f.run(store, a)
    result = store.cancel_run(ws.id, a.id, queued.id, now_millis())
    assert result is not None and result.action == "cancelled"
    cancelled = _deliveries(store, w)[0]
    assert cancelled.event_type == "run.cancelled"
    assert cancelled.run.error_code == "cancelled"
    lost = f.run(store, a)
    _, token = f.claim_one(store, lease_ms=1)
    assert store.start_run(lost.id, token, now_millis(), "shell", None)
    assert store.reap_expired(now_millis() + 10_000, 3).failed == [lost.id]
    newest = _deliveries(store, w)[0]
    assert (newest.event_type, newest.run.id, newest.run.error_code) == (
        "run.failed",
        lost.id,
        "worker_lost",
    )


def test_only_enabled_subscribed_webhooks_of_the_run_workspace_get_deliveries(
    store: Store,
) -> None:
    ws, other = f.workspace(store), f.workspace(store)
    a = f.agent(store, ws)
    starts = _webhook(store, ws, ("run.started",))
    ends = _webhook(store, ws, ("run.completed",))
    cancels = _webhook(store, ws, ("run.cancelled",))
    off = _webhook(store, ws, enabled=False)
    elsewhere = _webhook(store, other)
    _run_through(store, a, f.completed())
    assert [d.event_type for d in _deliveries(store, starts)] == ["run.started"]
    assert [d.event_type for d in _deliveries(store, ends)] == ["run.completed"]
    assert _deliveries(store, cancels) == []
    assert _deliveries(store, off) == []
    assert _deliveries(store, elsewhere) == []
    # Listing is scoped by workspace too.
    assert store.list_deliveries(other.id, starts.id, 10, None) == []


def test_a_rejected_status_write_enqueues_nothing(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws)
    run = f.run(store, a)
    f.claim_one(store)
    assert not store.start_run(run.id, "not-the-token", now_millis(), "shell", None)
    assert _deliveries(store, w) == []


def test_the_outbox_rolls_back_with_the_status_change(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws)
    run = f.run(store, a)
    _, token = f.claim_one(store)
    original = store._enqueue_webhooks  # type: ignore[attr-defined]

    def enqueue_then_crash(*args: Any) -> None:
        original(*args)
        raise RuntimeError("crash after the enqueue, before the commit")

    monkeypatch.setattr(store, "_enqueue_webhooks", enqueue_then_crash)
    with pytest.raises(RuntimeError, match="crash"):
        store.start_run(run.id, token, now_millis(), "shell", None)
    monkeypatch.undo()
    assert f.current(store, run).status == "claimed"
    assert _deliveries(store, w) == []
    assert store.start_run(run.id, token, now_millis(), "shell", None)
    assert [d.event_type for d in _deliveries(store, w)] == ["run.started"]


def test_claims_lease_each_delivery_to_exactly_one_dispatcher(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    hooks = [_webhook(store, ws, ("run.started", "run.completed")) for _ in range(4)]
    for _ in range(5):
        _run_through(store, a, f.completed())
    expected = {d.id for w in hooks for d in _deliveries(store, w)}
    assert len(expected) == 40
    peers = [f.peer(store) for _ in range(3)]
    stores = [store, *peers]
    seen: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def drain(i: int) -> None:
        mine = stores[i % len(stores)]
        start.wait()
        while True:
            got = mine.claim_deliveries(f"token-{i}", LATER + 60_000, LATER, 3, 8)
            if not got:
                return
            with lock:
                seen.extend(c.delivery.id for c in got)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(drain, range(8)))
    finally:
        for p in peers:
            p.close()
    assert sorted(seen) == sorted(expected)  # every one, none twice


def test_a_failed_attempt_backs_off_and_the_last_one_fails(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws, ("run.started",))
    run = f.run(store, a)
    _, token = f.claim_one(store)
    assert store.start_run(run.id, token, now_millis(), "shell", None)
    now = now_millis()
    [first] = store.claim_deliveries("t1", now + 60_000, now, 10, 2)
    assert first.delivery.attempts == 1 and first.url == w.url
    assert first.secret_ciphertext == "sealed" and first.lease_token == "t1"
    assert store.claim_deliveries("t2", now + 60_000, now, 10, 2) == []  # leased
    assert not store.retry_delivery(first.delivery.id, "t2", now + 5_000, 500, "HTTP 500")
    assert store.retry_delivery(first.delivery.id, "t1", now + 5_000, 500, "HTTP 500")
    [held] = _deliveries(store, w)
    assert (held.status, held.attempts, held.next_attempt_at) == ("pending", 1, now + 5_000)
    assert (held.response_status, held.last_error) == (500, "HTTP 500")
    assert store.claim_deliveries("t3", now + 60_000, now + 4_999, 10, 2) == []
    [second] = store.claim_deliveries("t4", now + 60_000, now + 5_000, 10, 2)
    assert second.delivery.attempts == 2
    assert store.retry_delivery(second.delivery.id, "t4", None, None, "ConnectError: refused")
    [gone] = _deliveries(store, w)
    assert (gone.status, gone.attempts, gone.next_attempt_at) == ("failed", 2, None)
    assert gone.last_error == "ConnectError: refused" and gone.response_status is None
    assert store.claim_deliveries("t5", LATER + 60_000, LATER, 10, 2) == []


def test_success_is_recorded_under_the_lease(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws, ("run.started",))
    run = f.run(store, a)
    _, token = f.claim_one(store)
    assert store.start_run(run.id, token, now_millis(), "shell", None)
    [c] = store.claim_deliveries("t1", LATER + 60_000, LATER, 10, 3)
    assert not store.finish_delivery(c.delivery.id, "stale", 200, LATER)
    assert store.finish_delivery(c.delivery.id, "t1", 204, LATER + 1)
    [done] = _deliveries(store, w)
    assert (done.status, done.response_status, done.delivered_at) == ("delivered", 204, LATER + 1)
    assert not store.finish_delivery(c.delivery.id, "t1", 200, LATER + 2)  # once only
    assert store.claim_deliveries("t2", LATER + 60_000, LATER, 10, 3) == []


def test_an_expired_lease_is_claimed_again_or_failed_after_the_last_attempt(
    store: Store,
) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws, ("run.started",))
    run = f.run(store, a)
    _, token = f.claim_one(store)
    assert store.start_run(run.id, token, now_millis(), "shell", None)
    [c1] = store.claim_deliveries("dead", LATER + 100, LATER, 10, 2)
    assert store.claim_deliveries("t2", LATER + 200, LATER + 100, 10, 2) == []  # still held
    [c2] = store.claim_deliveries("t2", LATER + 300, LATER + 101, 10, 2)
    assert c2.delivery.id == c1.delivery.id and c2.delivery.attempts == 2
    assert not store.finish_delivery(c1.delivery.id, "dead", 200, LATER + 150)  # fenced
    # The second holder dies too, on the last attempt: the delivery fails.
    assert store.claim_deliveries("t3", LATER + 900, LATER + 301, 10, 2) == []
    [gone] = _deliveries(store, w)
    assert (gone.status, gone.last_error, gone.attempts) == ("failed", LOST_LEASE_ERROR, 2)


def test_a_disabled_webhook_holds_its_deliveries_and_delete_drops_them(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws, ("run.started",))
    run = f.run(store, a)
    _, token = f.claim_one(store)
    assert store.start_run(run.id, token, now_millis(), "shell", None)
    store.update_webhook(ws.id, w.id, {"enabled": False}, 2_000)
    assert store.claim_deliveries("t1", LATER + 60_000, LATER, 10, 3) == []
    store.update_webhook(ws.id, w.id, {"enabled": True}, 3_000)
    [c] = store.claim_deliveries("t2", LATER + 60_000, LATER, 10, 3)
    assert store.retry_delivery(c.delivery.id, "t2", LATER, 500, "HTTP 500")
    assert store.delete_webhook(ws.id, w.id)
    assert store.claim_deliveries("t3", LATER + 60_000, LATER, 10, 3) == []
    assert store.list_deliveries(ws.id, w.id, 10, None) == []


def test_deliveries_page_newest_first(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    w = _webhook(store, ws, ("run.started", "run.completed"))
    for _ in range(3):
        _run_through(store, a, f.completed())
    everything = _deliveries(store, w)
    assert len(everything) == 6
    seqs = [d.seq for d in everything]
    assert seqs == sorted(seqs, reverse=True)
    first = store.list_deliveries(ws.id, w.id, 4, None)
    rest = store.list_deliveries(ws.id, w.id, 4, first[-1].seq)
    assert [d.id for d in first + rest] == [d.id for d in everything]


def test_a_webhook_deleted_during_a_status_change_does_not_fail_it(pg_url: str) -> None:
    """PostgreSQL only (SQLite serializes writers, so the two cannot interleave)."""
    _truncate_pg(pg_url)
    store = PostgresStore(pg_url)
    try:
        ws = f.workspace(store)
        a = f.agent(store, ws)
        w = _webhook(store, ws, ("run.started",))
        run = f.run(store, a)
        _, token = f.claim_one(store)
        with psycopg.connect(pg_url) as deleter, psycopg.connect(pg_url, autocommit=True) as look:
            deleter.execute("DELETE FROM webhooks WHERE id = %s", [w.id])  # not committed yet
            outcome: list[object] = []

            def start() -> None:
                try:
                    outcome.append(store.start_run(run.id, token, now_millis(), "shell", None))
                except Exception as exc:
                    outcome.append(exc)

            starter = threading.Thread(target=start)
            starter.start()

            def waiting() -> bool:
                row = look.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
                return row is not None and row[0] > 0

            f.wait_until(waiting, "the status change to wait for the webhook's row lock")
            deleter.commit()
            starter.join(timeout=30)
        assert outcome == [True]
        assert f.current(store, run).status == "running"
        assert store.list_deliveries(ws.id, w.id, 10, None) == []
    finally:
        store.close()
