"""Start and always stop the runyard processes (and the database) a benchmark runs against.

Everything started here is registered on a caller's :class:`contextlib.ExitStack`
right after it starts, so that an error, Ctrl-C or SIGTERM in the middle of a
run still terminates every process and drops the throwaway database.
Processes run in their own session (a terminal Ctrl-C reaches only the bench,
which then stops them in order) with their output in a log file under the
run's temporary directory; a failure to start shows the log's tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from cpu import Meter, pids, postgres_backends
from psycopg import sql

PYTHON = sys.executable
STOP_SECONDS = 15.0
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Proc:
    """One child process with its output in ``log``; :meth:`stop` is idempotent."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.log = cwd / f"{name}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}:\n{tail(self.log)}")

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"  {self.name} ignored SIGTERM for {STOP_SECONDS:.0f} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@dataclass
class Target:
    """A running runyard deployment and how to reach it."""

    label: str
    base_url: str
    workspace: str
    key: str
    procs: list[Proc]
    meters: dict[str, Meter] = field(default_factory=dict)
    data_dir: Path | None = None

    def check_alive(self) -> None:
        for proc in self.procs:
            proc.check_alive()


def _env(slots: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The host environment without ``RUNYARD_*``, then the process substrate, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["RUNYARD_SANDBOX"] = "process"
    env["RUNYARD_WORKER_SLOTS"] = str(slots)
    env.update(extra or {})
    return env


def _start(
    stack: contextlib.ExitStack,
    name: str,
    args: list[str],
    cwd: Path,
    slots: int,
    extra_env: dict[str, str] | None = None,
) -> Proc:
    proc = Proc(name, [PYTHON, "-m", "runyard", *args], _env(slots, extra_env), cwd)
    stack.callback(proc.stop)
    return proc


def wait_healthy(base_url: str, procs: list[Proc]) -> None:
    """Poll ``GET /healthz`` until it answers 200, failing fast if a process dies."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        for proc in procs:
            proc.check_alive()
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}.log ---\n{tail(p.log)}" for p in procs)
            raise RuntimeError(f"{base_url} not healthy after {START_SECONDS:.0f} s\n{logs}")
        time.sleep(0.1)


def start_sqlite(
    stack: contextlib.ExitStack,
    root: Path,
    slots: int,
    *,
    label: str = "SQLite",
    dirname: str = "sqlite",
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Target:
    """``runyard up`` on a fresh data dir: API and worker in one process on SQLite.

    ``env`` adds ``RUNYARD_*`` settings (for instance another sandbox); with
    ``wait=False`` the caller waits for health itself (see :func:`wait_started`),
    so that several targets can start at once.
    """
    data = root / dirname
    data.mkdir()
    port = free_port()
    argv = ["up", "--data-dir", str(data), "--port", str(port)]
    up = _start(stack, "up", argv, data, slots, env)
    base_url = f"http://127.0.0.1:{port}"
    target = Target(
        label=label,
        base_url=base_url,
        workspace="",
        key="",
        procs=[up],
        meters={"runyard": pids(lambda: [up.pid])},
        data_dir=data,
    )
    if wait:
        wait_started(target)
    return target


def wait_started(target: Target) -> None:
    """Wait until a ``runyard up`` target is healthy, then read its workspace key."""
    assert target.data_dir is not None
    wait_healthy(target.base_url, target.procs)
    creds = json.loads((target.data_dir / "credentials.json").read_text())
    target.workspace = creds["workspace"]
    target.key = creds["workspaceKey"]


def with_database(url: str, dbname: str) -> str:
    return urlsplit(url)._replace(path=f"/{dbname}").geturl()


def create_database(stack: contextlib.ExitStack, admin_url: str) -> str:
    """Create ``runyard_bench_<random>``; the stack drops it (with any sessions) at exit."""
    dbname = f"runyard_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )

    stack.callback(drop)
    return dbname


def start_postgres(stack: contextlib.ExitStack, root: Path, admin_url: str, slots: int) -> Target:
    """``runyard serve`` + one ``runyard worker`` sharing a fresh PostgreSQL database."""
    dbname = create_database(stack, admin_url)
    db_url = with_database(admin_url, dbname)
    serve_dir, worker_dir = root / "pg-serve", root / "pg-worker"
    serve_dir.mkdir()
    worker_dir.mkdir()
    created = subprocess.run(
        [PYTHON, "-m", "runyard", "admin", "create-workspace", "bench", "--database-url", db_url],
        env=_env(slots),
        cwd=serve_dir,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
        check=False,
    )
    if created.returncode != 0:
        raise RuntimeError(f"create-workspace failed:\n{created.stdout}{created.stderr}")
    workspace = json.loads(created.stdout.strip().splitlines()[-1])
    port = free_port()
    serve = _start(
        stack,
        "serve",
        ["serve", "--database-url", db_url, "--data-dir", str(serve_dir), "--port", str(port)],
        serve_dir,
        slots,
    )
    worker = _start(
        stack,
        "worker",
        ["worker", "--database-url", db_url, "--data-dir", str(worker_dir)],
        worker_dir,
        slots,
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_healthy(base_url, [serve, worker])
    return Target(
        label="PostgreSQL",
        base_url=base_url,
        workspace=workspace["workspace"],
        key=workspace["workspaceKey"],
        procs=[serve, worker],
        meters={
            "runyard": pids(lambda: [serve.pid, worker.pid]),
            "postgres": postgres_backends(admin_url, dbname),
        },
    )
