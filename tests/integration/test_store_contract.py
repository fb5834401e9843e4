"""Store contract, part 1: workspaces, keys, agents, environments and tenancy.

Every test runs on SQLite and on PostgreSQL through the parametrized
``store`` fixture, so the two backends are held to one behaviour. Runs,
claims, leases and the reaper are in ``test_store_runs.py``; concurrency,
notifications and migrations in ``test_store_concurrency.py``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from runyard.domain.entities import KeyKind
from runyard.errors import Conflict
from runyard.store.base import Store
from tests.integration import factories as f

# ---- workspaces -----------------------------------------------------------------


def test_workspace_round_trip_by_slug_and_id(store: Store) -> None:
    ws = f.workspace(store, "acme")
    assert store.get_workspace(slug="acme") == ws
    assert store.get_workspace(id=ws.id) == ws
    assert store.get_workspace(slug="nope") is None
    assert store.get_workspace(id="ws_missing") is None


def test_workspace_slug_is_unique(store: Store) -> None:
    first = f.workspace(store, "acme")
    with pytest.raises(Conflict):
        f.workspace(store, "acme")
    assert store.get_workspace(slug="acme") == first


# ---- keys -------------------------------------------------------------------------


def test_key_round_trip_find_list_touch(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    wkey = f.key(store, ws)
    akey = f.key(store, ws, a.id)
    assert store.find_key(wkey.secret_hash) == wkey
    assert store.find_key("0" * 64) is None
    assert {k.id for k in store.list_keys(ws.id, None)} == {wkey.id, akey.id}
    assert store.list_keys(ws.id, a.id) == [akey]
    store.touch_key(akey.id, 777)
    touched = store.find_key(akey.secret_hash)
    assert touched is not None and touched.last_used_at == 777
    assert touched.kind is KeyKind.AGENT


def test_key_secret_hash_is_unique(store: Store) -> None:
    ws = f.workspace(store)
    k = f.key(store, ws)
    with pytest.raises(Conflict):
        store.insert_key(replace(k, id="key_other"))


def test_revoke_key(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    akey = f.key(store, ws, a.id)
    # wrong agent scope: nothing happens
    assert store.revoke_key(ws.id, akey.id, "agent_other", 50) is None
    assert store.find_key(akey.secret_hash) == akey
    revoked = store.revoke_key(ws.id, akey.id, a.id, 50)
    assert revoked is not None and revoked.revoked_at == 50
    assert store.find_key(akey.secret_hash) is None
    # revoking again keeps the first revocation time
    again = store.revoke_key(ws.id, akey.id, None, 99)
    assert again is not None and again.revoked_at == 50
    assert store.revoke_key(ws.id, "key_missing", None, 99) is None


# ---- agents -------------------------------------------------------------------------


def test_agent_round_trip(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws, "alpha", env_status="pending")
    assert store.get_agent(ws.id, slug="alpha") == a
    assert store.get_agent(ws.id, agent_id=a.id) == a
    assert store.get_agent(ws.id, slug="beta") is None


def test_agent_slug_unique_per_workspace_on_insert(store: Store) -> None:
    ws, other = f.workspace(store), f.workspace(store)
    first = f.agent(store, ws, "alpha")
    with pytest.raises(Conflict):
        f.agent(store, ws, "alpha")
    assert store.list_agents(ws.id, 10, None) == [first]
    f.agent(store, other, "alpha")  # the same slug in another workspace is fine


def test_list_agents_pages_by_id(store: Store) -> None:
    ws = f.workspace(store)
    made = [f.agent(store, ws) for _ in range(7)]
    expected = sorted((a.id for a in made), reverse=True)
    seen: list[str] = []
    before = None
    while True:
        page = store.list_agents(ws.id, 3, before)
        if not page:
            break
        seen += [a.id for a in page]
        before = page[-1].id
    assert seen == expected


def test_update_agent(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws, "alpha")
    policy = {"maxConcurrentRuns": 3}
    updated = store.update_agent(
        ws.id, a.id, {"name": "Renamed", "slug": "renamed", "runtime_policy": policy}, 5_000
    )
    assert updated is not None
    assert (updated.name, updated.slug, updated.runtime_policy) == ("Renamed", "renamed", policy)
    assert updated.updated_at == 5_000
    assert store.get_agent(ws.id, slug="renamed") == updated
    assert store.get_agent(ws.id, slug="alpha") is None
    assert store.update_agent(ws.id, "agent_missing", {"name": "x"}, 6_000) is None


def test_rename_to_taken_slug_conflicts_and_changes_nothing(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws, "alpha")
    f.agent(store, ws, "beta")
    with pytest.raises(Conflict):
        store.update_agent(ws.id, a.id, {"name": "Beta", "slug": "beta"}, 9_000)
    assert store.get_agent(ws.id, agent_id=a.id) == a


def test_delete_agent(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    keep = f.agent(store, ws)
    assert store.delete_agent(ws.id, a.id, 10) is True
    assert store.get_agent(ws.id, agent_id=a.id) is None
    assert store.delete_agent(ws.id, a.id, 11) is False
    assert store.list_agents(ws.id, 10, None) == [keep]
    f.agent(store, ws, a.slug)  # the slug is free again


def test_delete_agent_revokes_only_its_keys(store: Store) -> None:
    ws = f.workspace(store)
    a, b = f.agent(store, ws), f.agent(store, ws)
    akey, bkey, wkey = f.key(store, ws, a.id), f.key(store, ws, b.id), f.key(store, ws)
    assert store.delete_agent(ws.id, a.id, 10)
    assert store.find_key(akey.secret_hash) is None
    assert store.find_key(bkey.secret_hash) == bkey
    assert store.find_key(wkey.secret_hash) == wkey
    revoked = store.list_keys(ws.id, a.id)
    assert [k.revoked_at for k in revoked] == [10]


# ---- tenancy --------------------------------------------------------------------------


def test_another_workspace_sees_and_changes_nothing(store: Store) -> None:
    ws, intruder = f.workspace(store), f.workspace(store)
    a = f.agent(store, ws, "alpha")
    akey = f.key(store, ws, a.id)
    r = f.run(store, a)

    assert store.get_agent(intruder.id, slug="alpha") is None
    assert store.get_agent(intruder.id, agent_id=a.id) is None
    assert store.list_agents(intruder.id, 10, None) == []
    assert store.update_agent(intruder.id, a.id, {"name": "Pwned"}, 5) is None
    assert store.delete_agent(intruder.id, a.id, 5) is False
    assert store.list_keys(intruder.id, None) == []
    assert store.list_keys(intruder.id, a.id) == []
    assert store.revoke_key(intruder.id, akey.id, None, 5) is None
    assert store.revoke_key(intruder.id, akey.id, a.id, 5) is None
    assert store.get_run(intruder.id, r.id) is None
    assert store.get_run(intruder.id, r.id, agent_id=a.id) is None
    assert store.list_runs(intruder.id, None, 10, None) == []
    assert store.list_runs(intruder.id, a.id, 10, None) == []

    # nothing changed for the owner
    assert store.get_agent(ws.id, agent_id=a.id) == a
    assert store.find_key(akey.secret_hash) == akey
    assert store.run_status(r.id) == "queued"
    assert f.current(store, r).error.code is None


# ---- environments ----------------------------------------------------------------------


def test_environments_needing_work(store: Store) -> None:
    ws = f.workspace(store)
    late = f.agent(store, ws, env_status="pending", now=3_000)
    early = f.agent(store, ws, env_status="pending", now=2_000)
    ready = f.agent(store, ws, env_status="ready")
    recon = f.agent(store, ws, env_status="ready", now=4_000)
    store.update_agent(ws.id, recon.id, {"recon_status": "pending"}, 4_000)
    assert [a.id for a in store.environments_needing_work(10)] == [early.id, late.id, recon.id]
    assert [a.id for a in store.environments_needing_work(1)] == [early.id]
    assert ready.id not in {a.id for a in store.environments_needing_work(10)}


def test_set_environment_is_conditional(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws, env_status="pending")
    assert store.set_environment(a.id, ("pending",), {"env_status": "provisioning"}, 10)
    # a second provisioner loses the race: the status is no longer pending
    assert not store.set_environment(a.id, ("pending",), {"env_status": "provisioning"}, 11)
    assert not store.set_environment(a.id, ("failed", "ready"), {"env_status": "pending"}, 12)
    ready = {"env_status": "ready", "env_ready_at": 20, "env_last_error": None}
    assert store.set_environment(a.id, ("provisioning",), ready, 20)
    got = store.get_agent(ws.id, agent_id=a.id)
    assert got is not None
    assert (got.environment.status, got.environment.ready_at) == ("ready", 20)
    assert got.environment.updated_at == 20
    assert store.environments_needing_work(10) == []
    assert not store.set_environment("agent_missing", ("ready",), {"env_status": "pending"}, 30)
