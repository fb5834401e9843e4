"""Real ``runyard serve`` / ``runyard worker`` processes on a shared PostgreSQL database.

The crash tests need processes they can SIGKILL at a chosen moment, with
short leases so that the reaper acts within seconds. :class:`Cluster` starts
them with one environment and one data directory (so every worker sees the
same agent homes, as workers on one host would), logs each to a file, and
stops every process it started, including run processes that a killed
worker left behind (their process group ids are recorded by the test
scripts).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from runyard.services.keys import KeyService
from runyard.services.workspaces import WorkspaceService
from runyard.store.postgres import PostgresStore
from tests.conftest import free_port, runyard_cmd, wait_healthy

SHORT_LEASES = {
    "RUNYARD_SANDBOX": "process",
    "RUNYARD_LEASE_SECONDS": "2",
    "RUNYARD_HEARTBEAT_SECONDS": "0.5",
    "RUNYARD_REAPER_SECONDS": "0.5",
    "RUNYARD_POLL_SECONDS": "0.2",
}


def wait_for(check: Any, what: str, deadline_s: float = 60.0) -> Any:
    """Poll ``check()`` until it returns something truthy; return that value."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_marked(marker: str) -> None:
    """SIGKILL every process whose command line carries ``marker`` (a run's unique tag)."""
    subprocess.run(["pkill", "-KILL", "-f", marker], capture_output=True, check=False)


def marked_alive(marker: str) -> bool:
    """Whether a live (not zombie) process carries ``marker`` in its command line."""
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (proc_dir / "stat").read_text()
        except OSError:
            continue
        if marker in cmdline and stat[stat.rindex(")") + 2] not in ("Z", "X"):
            return True
    return False


@dataclass
class Cluster:
    """Processes of one test sharing ``db_url`` and ``data_dir``."""

    db_url: str
    data_dir: Path
    base_url: str = ""
    key: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    run_markers: list[str] = field(default_factory=list)

    def _spawn(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.data_dir.parent / f"{name}-{len(self.procs)}.log"
        env = {**os.environ, **SHORT_LEASES, "RUNYARD_DATABASE_URL": self.db_url}
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [*runyard_cmd(), *args, "--data-dir", str(self.data_dir)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.procs.append(proc)
        return proc, log_path

    def serve(self) -> None:
        """Start one API server and create the workspace whose key the tests use."""
        store = PostgresStore(self.db_url)
        try:
            store.migrate()
            _, self.key = WorkspaceService(store, KeyService(store)).create("default")
        finally:
            store.close()
        port = free_port()
        proc, log_path = self._spawn("serve", "serve", "--port", str(port))
        self.base_url = f"http://127.0.0.1:{port}"
        wait_healthy(self.base_url, proc, log_path)

    def worker(self, slots: int = 4) -> subprocess.Popen[bytes]:
        """Start a worker; it has no port, so tests observe it through what it does."""
        return self._spawn("worker", "worker", "--slots", str(slots))[0]

    def client(self, timeout: float = 120.0) -> httpx.Client:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=timeout,
            limits=limits,
        )

    def create_agent(self, name: str, max_concurrent_runs: int = 1) -> str:
        with self.client() as c:
            resp = c.post(
                "/v1/workspaces/default/agents",
                json={"name": name, "runtimePolicy": {"maxConcurrentRuns": max_concurrent_runs}},
            )
            assert resp.status_code == 201, resp.text
            agent_id: str = resp.json()["agent"]["id"]
            return agent_id

    def wait_ready(self, agent_id: str) -> None:
        """Wait until a worker has provisioned the agent's environment."""
        with self.client() as c:
            wait_for(
                lambda: c.get(f"/v1/agents/{agent_id}/status").json()["status"] == "ready",
                f"agent {agent_id} to be ready",
            )

    def home(self, agent_id: str) -> Path:
        return self.data_dir / "agents" / agent_id / "home"

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}"
            for p in sorted(self.data_dir.parent.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)
        for marker in self.run_markers:
            kill_marked(marker)
