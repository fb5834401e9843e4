"""The real executor against a real store when a stale worker and the current one overlap.

A worker whose claim expired and was rescued still holds a ``Run`` object
and a token. Fencing keeps its writes out of the store; these tests check it
also cannot disturb the attempt that now owns the run on the same host (its
private directory, its ephemeral home), and that it never starts the run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from runyard.harness import build_registry
from runyard.sandbox import build_substrate
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis
from runyard.worker.executor import Executor
from tests.integration import factories as f
from tests.integration.cluster import kill_marked, marked_alive


def _executor(store: Store, data_dir: Path) -> Executor:
    settings = Settings(
        data_dir=data_dir, substrate="process", lease_seconds=30, heartbeat_seconds=0.1
    )
    return Executor(store, settings, build_substrate(settings), build_registry())


def _gone(marker: str) -> bool:
    return not marked_alive(marker)


async def _wait_file(path: Path) -> str:
    for _ in range(3_000):
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


# The run's child is tagged with the run id: pids inside a run are namespaced.
HANG = (
    'echo "runyard-hang-$RUNYARD_RUN_ID" > "{signals}/pgid"\n'
    '(exec -a "runyard-hang-$RUNYARD_RUN_ID" sleep 300) & wait\n'
)


def test_stale_attempt_leaves_the_current_attempt_alone(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    signals = tmp_path / "signals"
    signals.mkdir()
    ws = f.workspace(store)
    agent = f.agent_entity(ws)
    policy = {**agent.runtime_policy, "storagePolicy": {"persistent": False}}
    agent = f.replace_policy(agent, policy)
    store.insert_agent(agent)
    script = (
        'echo kept > "$HOME/data"\n'
        f'touch "{signals}/current-started"\n'
        f'while [ ! -e "{signals}/stale-done" ]; do sleep 0.02; done\n'
        'cat "$HOME/data"\n'
    )
    run = f.run_entity(agent, text=script)
    store.insert_run(run, concurrency_limit=1)
    t = now_millis()
    stale, stale_token = f.claim_one(store, "stale", now=t - 10_000, lease_ms=1_000)
    assert store.reap_expired(t, 5).requeued == [run.id]
    current, token = f.claim_one(store, "current", now=t)

    async def scenario() -> None:
        executor = _executor(store, tmp_path / "data")
        running = asyncio.create_task(executor.execute(current, token))
        while not (signals / "current-started").exists():
            await asyncio.sleep(0.02)
        # the stale worker gets around to its claim: it must neither run nor clean up
        await executor.execute(stale, stale_token)
        (signals / "stale-done").touch()
        await running

    asyncio.run(scenario())
    done = f.current(store, run)
    assert (done.status, done.output, done.attempt) == ("completed", "kept\n", 2)


def test_lost_lease_kills_the_process_and_writes_nothing(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    ws = f.workspace(store)
    agent = f.agent(store, ws)
    run = f.run_entity(agent, text=HANG.format(signals=tmp_path))
    store.insert_run(run, concurrency_limit=1)
    claimed, token = f.claim_one(store, "me")
    pgid = ""

    async def scenario() -> None:
        nonlocal pgid
        task = asyncio.create_task(_executor(store, tmp_path / "data").execute(claimed, token))
        pgid = (await _wait_file(tmp_path / "pgid")).strip()
        # the reaper (another worker, a later clock) decides this worker is gone
        assert store.reap_expired(now_millis() + 10**7, 5).failed == [run.id]
        await asyncio.wait_for(task, 60)

    try:
        asyncio.run(scenario())
        # SIGKILLed when the executor returned; poll only for the kernel to finish it
        f.wait_until(lambda: _gone(pgid), "the run's process group to be gone")
    finally:
        if pgid and not _gone(pgid):
            kill_marked(pgid)
    got = f.current(store, run)
    assert (got.status, got.error.code, got.error.retryable) == ("failed", "worker_lost", True)


def test_deleting_the_agent_cancels_its_running_run(sqlite_store: Store, tmp_path: Path) -> None:
    store = sqlite_store
    ws = f.workspace(store)
    agent = f.agent(store, ws)
    run = f.run_entity(agent, text=HANG.format(signals=tmp_path))
    store.insert_run(run, concurrency_limit=1)
    claimed, token = f.claim_one(store, "me")
    pgid = ""

    async def scenario() -> None:
        nonlocal pgid
        task = asyncio.create_task(_executor(store, tmp_path / "data").execute(claimed, token))
        pgid = (await _wait_file(tmp_path / "pgid")).strip()
        assert store.delete_agent(ws.id, agent.id, now_millis())
        await asyncio.wait_for(task, 60)

    try:
        asyncio.run(scenario())
        # SIGKILLed when the executor returned; poll only for the kernel to finish it
        f.wait_until(lambda: _gone(pgid), "the run's process group to be gone")
    finally:
        if pgid and not _gone(pgid):
            kill_marked(pgid)
    got = f.current(store, run)
    assert (got.status, got.error.code) == ("cancelled", "cancelled")
