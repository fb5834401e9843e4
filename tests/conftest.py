"""Shared fixtures: real stores on SQLite and PostgreSQL, and a started ``runyard up``.

PostgreSQL tests run against the server at ``RUNYARD_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) in a database created for
this session and dropped after it. They are never skipped silently: if the
server is unreachable the tests fail, unless ``RUNYARD_SKIP_POSTGRES=1`` is
set explicitly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from runyard.store.base import Store
from runyard.store.postgres import PostgresStore
from runyard.store.sqlite import SqliteStore

PG_ADMIN_URL = os.environ.get(
    "RUNYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TABLES = (
    "runs",
    "agents",
    "api_keys",
    "workspaces",
    "environment_teardowns",
    "secrets",
    "capabilities",
    "run_events",
    "idempotency_keys",
    "schedules",
    "webhooks",
    "webhook_deliveries",
    "run_steps",
    "artifacts",
)


def _with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    if os.environ.get("RUNYARD_SKIP_POSTGRES") == "1":
        pytest.skip("RUNYARD_SKIP_POSTGRES=1: PostgreSQL tests explicitly disabled")
    dbname = f"runyard_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for these tests and is unreachable: {exc}")
    url = _with_db(PG_ADMIN_URL, dbname)
    store = PostgresStore(url)
    store.migrate()
    store.close()
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def _truncate_pg(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty store on each backend (the contract suite runs on both)."""
    made: Store
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "runyard.db")
    else:
        url = request.getfixturevalue("pg_url")
        _truncate_pg(url)
        made = PostgresStore(url)
    made.migrate()
    yield made
    made.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    made = SqliteStore(tmp_path / "runyard.db")
    made.migrate()
    yield made
    made.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``runyard`` process started by a test."""

    base_url: str
    data_dir: Path
    workspace_key: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    substrate: str = "process"

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.workspace_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def runyard_cmd() -> list[str]:
    return [sys.executable, "-m", "runyard"]


def wait_healthy(base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"runyard exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"runyard did not become healthy:\n{log_path.read_text(errors='replace')}")


def start_up(data_dir: Path, extra_env: dict[str, str] | None = None, *args: str) -> Server:
    """Start ``runyard up`` on a free port and wait until it answers."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"runyard-{port}.log"
    env = {**os.environ, "RUNYARD_SANDBOX": "process", **(extra_env or {})}
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*runyard_cmd(), "up", "--data-dir", str(data_dir), "--port", str(port), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base_url = f"http://127.0.0.1:{port}"
    wait_healthy(base_url, proc, log_path)
    creds = json.loads((data_dir / "credentials.json").read_text())
    return Server(base_url, data_dir, creds["workspaceKey"], proc, log_path)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``runyard up`` (SQLite, process substrate) shared by the acceptance tests."""
    srv = start_up(tmp_path_factory.mktemp("up") / "data")
    yield srv
    srv.stop()


_agent_counter = iter(range(1_000_000))


@pytest.fixture
def agent(server: Server) -> dict[str, object]:
    """A fresh agent in the shared server's default workspace; returns its GET document."""
    name = f"Test Agent {next(_agent_counter)} {uuid.uuid4().hex[:6]}"
    with server.client() as c:
        resp = c.post(
            "/v1/workspaces/default/agents",
            json={"name": name, "runtimePolicy": {"maxConcurrentRuns": 4}},
        )
        assert resp.status_code == 201, resp.text
        doc: dict[str, object] = resp.json()
    return doc
