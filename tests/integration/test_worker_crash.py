"""Crash and concurrency tests of the worker with real processes.

``runyard up`` (SQLite) and ``runyard serve`` + ``runyard worker`` (PostgreSQL)
run with 2-second leases. Workers are SIGKILLed mid-run or mid-claim, and
the tests check DESIGN's promise: no run is lost and none runs twice. Each
run's script appends its ``RUNYARD_RUN_ID`` to a file in its ``$HOME``, so
"executed once" is counted on disk, not inferred from the store. Deadlines
are generous bounds on polling loops, never timing assertions.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from runyard.domain.entities import Run
from runyard.store.postgres import PostgresStore
from tests.conftest import Server, start_up
from tests.integration.cluster import (
    SHORT_LEASES,
    Cluster,
    kill_marked,
    marked_alive,
    stop_process,
    wait_for,
)

# Records the execution, then outlives any lease in a child tagged with the
# run id (pids inside a run are namespaced, so tests find it by that tag).
SLOW = """\
echo "$RUNYARD_RUN_ID" >> "$HOME/executions"
(exec -a "runyard-slow-$RUNYARD_RUN_ID" sleep 300) &
wait
"""


def marker_of(run_id: str) -> str:
    return f"runyard-slow-{run_id}"


QUICK = 'echo "$RUNYARD_RUN_ID" >> "$HOME/executions"; echo "$RUNYARD_RUN_ID"'

# Fails loudly if two runs of the agent ever overlap (mkdir is atomic).
EXCLUSIVE = """\
mkdir "$HOME/lock" 2>/dev/null || { echo "$RUNYARD_RUN_ID" >> "$HOME/overlaps"; exit 3; }
echo "$RUNYARD_RUN_ID" >> "$HOME/executions"
sleep 0.1
rmdir "$HOME/lock"
echo "$RUNYARD_RUN_ID"
"""


def executions(home: Path) -> list[str]:
    path = home / "executions"
    return path.read_text().split() if path.exists() else []


def exec_in_background(
    pool: ThreadPoolExecutor, client: httpx.Client, agent_id: str, script: str
) -> Future[httpx.Response]:
    body = {"input": script, "timeoutSeconds": 600}
    return pool.submit(client.post, f"/v1/agents/{agent_id}/exec", json=body)


def run_doc(client: httpx.Client, agent_id: str, run_id: str) -> dict[str, Any]:
    resp = client.get(f"/v1/agents/{agent_id}/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()["run"]
    return doc


def wait_status(client: httpx.Client, agent_id: str, run_id: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        doc = run_doc(client, agent_id, run_id)
        return doc if doc["status"] == status else None

    found: dict[str, Any] = wait_for(check, f"run {run_id} to be {status}")
    return found


def start_running(
    pool: ThreadPoolExecutor, client: httpx.Client, agent_id: str, home: Path
) -> tuple[str, str, Future[httpx.Response]]:
    """Submit SLOW and wait until it runs; returns its id, process tag, pending /exec."""
    pending = exec_in_background(pool, client, agent_id, SLOW)
    run_id: str = wait_for(lambda: executions(home)[:1], "the run to start")[0]
    wait_status(client, agent_id, run_id, "running")
    marker = marker_of(run_id)
    wait_for(lambda: marked_alive(marker), "the run's child")
    return run_id, marker, pending


def assert_lost_once(doc: dict[str, Any], home: Path, run_id: str) -> None:
    assert doc["status"] == "failed"
    assert doc["error"]["code"] == "worker_lost"
    assert doc["error"]["retryable"] is True
    assert executions(home) == [run_id]


# ---- (a) SIGKILL while running ---------------------------------------------------------


def test_up_killed_during_a_run_fails_it_once(tmp_path: Path) -> None:
    """SQLite: ``runyard up`` dies mid-run; the restarted one fails the run, never re-runs it."""
    data = tmp_path / "data"
    servers: list[Server] = [start_up(data, SHORT_LEASES)]
    marker = ""
    try:
        client = servers[0].client()
        resp = client.post("/v1/workspaces/default/agents", json={"name": "Crash Up"})
        agent_id = resp.json()["agent"]["id"]
        home = data / "agents" / agent_id / "home"
        with ThreadPoolExecutor(1) as pool:
            run_id, marker, pending = start_running(pool, client, agent_id, home)
            servers[0].proc.kill()
            servers[0].proc.wait()
            assert isinstance(pending.exception(60), httpx.TransportError)
        client.close()

        servers.append(start_up(data, SHORT_LEASES))
        with servers[1].client() as client:
            assert_lost_once(wait_status(client, agent_id, run_id, "failed"), home, run_id)
            # the agent's only concurrency slot is free again
            done = client.post(f"/v1/agents/{agent_id}/exec", json={"input": QUICK})
            assert done.status_code == 200, done.text
            assert executions(home) == [run_id, done.json()["runId"]]
            assert run_doc(client, agent_id, run_id)["status"] == "failed"
    finally:
        for srv in servers:
            srv.stop()
        if marker:
            kill_marked(marker)


def test_worker_killed_during_a_run_fails_it_once(cluster: Cluster) -> None:
    """PostgreSQL: a worker dies mid-run; another worker's reaper fails it as worker_lost."""
    cluster.serve()
    first = cluster.worker()
    agent_id = cluster.create_agent("Crash Worker")
    home = cluster.home(agent_id)
    with cluster.client() as client, ThreadPoolExecutor(1) as pool:
        run_id, marker, pending = start_running(pool, client, agent_id, home)
        cluster.run_markers.append(marker)
        first.kill()
        first.wait()
        cluster.worker()
        # the synchronous caller is answered: the run failed, and may be retried
        answer = pending.result(120)
        assert answer.status_code == 502, answer.text
        data = answer.json()["data"]
        assert (data["runId"], data["runStatus"], data["retryable"]) == (run_id, "failed", True)
        assert data["runError"]["code"] == "worker_lost"
        assert_lost_once(run_doc(client, agent_id, run_id), home, run_id)
        done = client.post(f"/v1/agents/{agent_id}/exec", json={"input": QUICK})
        assert done.status_code == 200, done.text
        assert executions(home) == [run_id, done.json()["runId"]]


def test_run_processes_do_not_outlive_a_killed_worker(cluster: Cluster) -> None:
    cluster.serve()
    first = cluster.worker()
    agent_id = cluster.create_agent("Orphans")
    with cluster.client() as client, ThreadPoolExecutor(1) as pool:
        _, marker, pending = start_running(pool, client, agent_id, cluster.home(agent_id))
        cluster.run_markers.append(marker)
        first.kill()
        first.wait()
        cluster.worker()  # lets the pending /exec end: the run fails as worker_lost
        assert pending.result(120).status_code == 502
    # the worker has been dead for a whole lease: a death signal had all that time
    assert not marked_alive(marker)


# ---- (b) SIGKILL while only claimed ----------------------------------------------------------

CLAIM_AND_HANG = """\
import secrets, sys, time
from runyard.domain.entities import Run
from runyard.store.postgres import PostgresStore
from runyard.types import now_millis
store = PostgresStore(sys.argv[1])
now = now_millis()
run = store.claim_run("doomed-worker", secrets.token_hex(16), now + 2000, now)
print(run.id if run else "none", flush=True)
time.sleep(600)
"""


def test_worker_killed_while_a_run_is_claimed_requeues_it(cluster: Cluster) -> None:
    """A worker claims a run (exactly the worker's claim call) and dies before starting it."""
    cluster.serve()
    agent_id = cluster.create_agent("Crash Claim")
    home = cluster.home(agent_id)
    # a worker provisions the environment (/exec admits only ready agents), then leaves
    provisioner = cluster.worker()
    cluster.wait_ready(agent_id)
    stop_process(provisioner)
    assert provisioner.returncode == 0
    with cluster.client() as client, ThreadPoolExecutor(1) as pool:
        pending = exec_in_background(pool, client, agent_id, QUICK)
        wait_for(lambda: client.get(f"/v1/agents/{agent_id}/runs").json()["runs"], "the run")
        doomed = subprocess.Popen(
            [sys.executable, "-c", CLAIM_AND_HANG, cluster.db_url], stdout=subprocess.PIPE
        )
        cluster.procs.append(doomed)
        assert doomed.stdout is not None
        run_id = doomed.stdout.readline().decode().strip()
        assert run_id.startswith("run_")
        assert run_doc(client, agent_id, run_id)["status"] == "claimed"
        doomed.kill()
        doomed.wait()
        doomed.stdout.close()
        cluster.worker()
        answer = pending.result(120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["runId"] == run_id
    assert executions(home) == [run_id]
    # the second claim is the one that ran
    assert [(r.id, r.status, r.attempt) for r in stored_runs(cluster)] == [(run_id, "completed", 2)]


def stored_runs(cluster: Cluster) -> list[Run]:
    """Every run of the cluster's workspace, read from the store itself."""
    store = PostgresStore(cluster.db_url)
    try:
        ws = store.get_workspace(slug="default")
        assert ws is not None
        return store.list_runs(ws.id, None, 1_000, None)
    finally:
        store.close()


# ---- (c) many workers, many runs ----------------------------------------------------------------

AGENTS = 4
RUNS_PER_AGENT = 10


def test_many_workers_run_every_run_once_within_limits(cluster: Cluster) -> None:
    cluster.serve()
    for _ in range(3):
        cluster.worker(slots=3)
    agents = [cluster.create_agent(f"Busy {i}", max_concurrent_runs=1) for i in range(AGENTS)]
    jobs = [a for a in agents for _ in range(RUNS_PER_AGENT)]
    with cluster.client() as client, ThreadPoolExecutor(len(jobs)) as pool:
        answers = [
            (a, fut.result(180))
            for a, fut in [(a, exec_in_background(pool, client, a, EXCLUSIVE)) for a in jobs]
        ]
    for _, answer in answers:
        assert answer.status_code == 200, answer.text
    for agent_id in agents:
        home = cluster.home(agent_id)
        ran = executions(home)
        submitted = [r.json()["runId"] for a, r in answers if a == agent_id]
        assert not (home / "overlaps").exists(), (home / "overlaps").read_text()
        assert Counter(ran) == Counter(submitted)  # each exactly once, none missing
        assert len(set(ran)) == RUNS_PER_AGENT
    runs = stored_runs(cluster)
    assert len(runs) == AGENTS * RUNS_PER_AGENT
    assert {(r.status, r.attempt) for r in runs} == {("completed", 1)}
