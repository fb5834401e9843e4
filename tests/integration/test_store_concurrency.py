"""Store contract, part 3: racing claimers, change notifications and migrations.

Runs on SQLite and PostgreSQL. Claimers race from many threads over several
store instances (separate connection pools / SQLite connections, as separate
worker processes would), and every run must be claimed exactly once without
an agent ever exceeding its concurrency limit. Notifications are checked
across two store instances on PostgreSQL (LISTEN/NOTIFY), with bounded
polling rather than timing assertions.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from runyard.store.base import Store
from runyard.store.postgres import PostgresStore
from runyard.store.sqlite import SqliteStore
from runyard.types import now_millis
from tests.conftest import PG_ADMIN_URL
from tests.integration import factories as f

# ---- exactly-once claiming ----------------------------------------------------------------

LIMITS = (1, 1, 1, 1, 2, 3)
RUNS_PER_AGENT = 12
STORES = 4
THREADS_PER_STORE = 4


def test_racing_claimers_claim_every_run_exactly_once(store: Store) -> None:
    ws = f.workspace(store)
    agents = [f.agent(store, ws) for _ in LIMITS]
    limit_of = {a.id: lim for a, lim in zip(agents, LIMITS, strict=True)}
    # round-robin over the agents, so that claimers' candidates span several agents
    expected = {
        f.run(store, a, limit=limit_of[a.id]).id for _ in range(RUNS_PER_AGENT) for a in agents
    }

    stores = [store] + [f.peer(store) for _ in range(STORES - 1)]
    lock = threading.Lock()
    claims: list[str] = []
    active: Counter[str] = Counter()
    over_limit: list[str] = []
    errors: list[BaseException] = []
    all_done = threading.Event()

    def worker(s: Store, name: str) -> None:
        try:
            while not all_done.is_set():
                got, token = f.claim(s, name)
                if got is None:
                    time.sleep(0.001)
                    continue
                with lock:
                    claims.append(got.id)
                    active[got.agent_id] += 1
                    if active[got.agent_id] > limit_of[got.agent_id]:
                        over_limit.append(got.agent_id)
                assert s.start_run(got.id, token, now_millis(), "shell", None)
                with lock:  # leave the count before the slot is freed in the store
                    active[got.agent_id] -= 1
                assert s.finish_run(got.id, token, f.completed(), now_millis())
                with lock:
                    if len(claims) >= len(expected):
                        all_done.set()
        except BaseException as exc:
            errors.append(exc)
            all_done.set()

    def monitor() -> None:
        # an independent view: no snapshot ever shows an agent over its limit
        try:
            while not all_done.is_set():
                for a in agents:
                    runs = store.list_runs(ws.id, a.id, 1_000, None)
                    busy = sum(r.status in ("claimed", "running") for r in runs)
                    if busy > limit_of[a.id]:
                        over_limit.append(a.id)
        except BaseException as exc:
            errors.append(exc)
            all_done.set()

    threads = [
        threading.Thread(target=worker, args=(s, f"w{i}-{j}"))
        for i, s in enumerate(stores)
        for j in range(THREADS_PER_STORE)
    ] + [threading.Thread(target=monitor)]
    try:
        for t in threads:
            t.start()
        all_done.wait(120)
        all_done.set()
        for t in threads:
            t.join(60)
    finally:
        for s in stores[1:]:
            s.close()
    assert errors == []
    assert over_limit == []
    assert sorted(claims) == sorted(expected)  # every run once, none twice
    finished = store.list_runs(ws.id, None, 1_000, None)
    assert {r.status for r in finished} == {"completed"}
    assert {r.attempt for r in finished} == {1}


# ---- notifications ------------------------------------------------------------------------


class Heard:
    """Collects ``(event, run_id)`` callbacks from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def __call__(self, event: str, run_id: str) -> None:
        with self._lock:
            self.events.append((event, run_id))

    def saw(self, event: str, run_id: str) -> bool:
        with self._lock:
            return (event, run_id) in self.events

    def wait_for(self, event: str, run_id: str) -> list[tuple[str, str]]:
        f.wait_until(lambda: self.saw(event, run_id), f"{event} {run_id}")
        with self._lock:
            return list(self.events)


@pytest.fixture
def listener(store: Store) -> Iterator[Store]:
    """Where notifications are heard: another instance on PostgreSQL (NOTIFY crosses
    processes), the writing instance itself on SQLite (in-process delivery)."""
    if isinstance(store, SqliteStore):
        yield store
        return
    other = f.peer(store)
    yield other
    other.close()


def test_subscribers_hear_queued_and_finished(store: Store, listener: Store) -> None:
    heard = Heard()
    listener.subscribe(heard)
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a)
    heard.wait_for("queued", r.id)
    _, token = f.claim_one(store)
    assert not store.finish_run(r.id, "wrong", f.completed(), now_millis())
    assert store.start_run(r.id, token, now_millis(), "shell", None)
    assert store.finish_run(r.id, token, f.completed(), now_millis())
    events = heard.wait_for("finished", r.id)
    assert events.count(("finished", r.id)) == 1
    # a marker run queued after a rejected write: everything before it was delivered
    assert not store.finish_run(r.id, token, f.failed(), now_millis())
    marker = f.run(store, a)
    events = heard.wait_for("queued", marker.id)
    assert events.count(("finished", r.id)) == 1
    assert events.count(("queued", r.id)) == 1


def test_subscribers_hear_reaper_and_delete(store: Store, listener: Store) -> None:
    heard = Heard()
    listener.subscribe(heard)
    ws = f.workspace(store)
    a = f.agent(store, ws)
    lost = f.run(store, a, limit=2)
    retry = f.run(store, a, limit=2)
    t = now_millis()
    _, token = f.claim_one(store, now=t, lease_ms=1_000)
    assert store.start_run(lost.id, token, t, "shell", None)
    f.claim_one(store, now=t, lease_ms=1_000)
    result = store.reap_expired(t + 5_000, 5)
    assert (result.failed, result.requeued) == ([lost.id], [retry.id])
    heard.wait_for("finished", lost.id)
    f.wait_until(lambda: heard.events.count(("queued", retry.id)) == 2, "re-queue event")
    assert store.delete_agent(ws.id, a.id, t + 6_000)
    heard.wait_for("finished", retry.id)


def test_several_subscribers_and_a_failing_one(store: Store, listener: Store) -> None:
    def broken(event: str, run_id: str) -> None:
        raise RuntimeError("subscriber bug")

    first, second = Heard(), Heard()
    listener.subscribe(first)
    listener.subscribe(broken)
    listener.subscribe(second)
    ws = f.workspace(store)
    a = f.agent(store, ws)
    one = f.run(store, a)  # a subscriber's bug must not fail the committed write
    first.wait_for("queued", one.id)
    second.wait_for("queued", one.id)
    two = f.run(store, a)  # ... nor stop later deliveries
    first.wait_for("queued", two.id)
    second.wait_for("queued", two.id)
    assert f.current(store, one).status == "queued"


# ---- migrations ----------------------------------------------------------------------------


def _versions(url_or_path: str) -> list[str]:
    if url_or_path.startswith("postgresql://"):
        with psycopg.connect(url_or_path) as conn:
            rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
            return [r[0] for r in rows.fetchall()]
    import sqlite3

    conn2 = sqlite3.connect(url_or_path)
    try:
        return [r[0] for r in conn2.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        conn2.close()


def test_migrate_is_idempotent(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a)
    store.migrate()
    store.migrate()
    assert store.get_agent(ws.id, agent_id=a.id) == a
    assert f.current(store, r).status == "queued"
    where = store.url if isinstance(store, PostgresStore) else ""
    if isinstance(store, SqliteStore):
        where = str(store.path)
    versions = _versions(where)
    assert versions == sorted(set(versions)) and versions


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty, unmigrated PostgreSQL database, dropped afterwards."""
    dbname = f"runyard_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    yield f"{base}/{dbname}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _migrate_at_once(make: list[Store]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(make))

    def go(s: Store) -> None:
        try:
            barrier.wait(10)
            s.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in make]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_concurrent_migrate_on_a_fresh_postgres_database(fresh_pg_url: str) -> None:
    stores = [PostgresStore(fresh_pg_url) for _ in range(3)]
    try:
        _migrate_at_once(list(stores))
        versions = _versions(fresh_pg_url)
        assert versions and len(versions) == len(set(versions))
        ws = f.workspace(stores[0])
        assert stores[2].get_workspace(id=ws.id) == ws
    finally:
        for s in stores:
            s.close()


def test_concurrent_migrate_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    stores = [SqliteStore(tmp_path / "fresh.db") for _ in range(3)]
    try:
        _migrate_at_once(list(stores))
        versions = _versions(str(tmp_path / "fresh.db"))
        assert versions and len(versions) == len(set(versions))
        ws = f.workspace(stores[0])
        assert stores[2].get_workspace(id=ws.id) == ws
    finally:
        for s in stores:
            s.close()
