"""Fixtures for the sandbox attack battery: a real ``runyard up`` on bubblewrap.

The battery starts one ``runyard up`` with the default ``bwrap`` substrate
(per-agent uid, cgroups, loop-mounted homes, egress proxy), creates agents
over HTTP and runs attacks as shell scripts inside their sandboxes. Every
attack is checked from the inside (what the script saw) and from the host
(files not written, processes gone, cgroups removed, evidence recorded).

It needs what the substrate needs: root, bubblewrap, socat, setpriv and
writable cgroups. On a host without them the battery is skipped with the
reason shown; it never falls back to a weaker substrate.

Clean-up is the battery's own: agents are deleted and the server stopped,
then the instance's home mounts, run directories and run cgroups are removed
and the home images deleted, whatever runyard itself left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from runyard.sandbox.bwrap import sandbox_uid
from runyard.sandbox.volumes import DEFAULT_MOUNT_ROOT, instance_root
from tests.conftest import Server, start_up

T = TypeVar("T")

MARKER_VAR = "RUNYARD_ATTACK_HOST_MARKER"
CGROUP_ROOT = Path("/sys/fs/cgroup")
AGENTS = "/v1/workspaces/default/agents"


def poll(read: Callable[[], T], until: Callable[[T], bool], seconds: float = 30.0) -> T:
    """Re-read until ``until`` holds: a bounded loop that fails with the last value seen."""
    deadline = time.monotonic() + seconds
    value = read()
    while not until(value):
        assert time.monotonic() < deadline, f"condition not reached; last value: {value!r}"
        time.sleep(0.05)
        value = read()
    return value


def survivors(pattern: str) -> list[str]:
    """Host processes whose command line contains ``pattern`` (``pgrep -af``)."""
    done = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return [line for line in done.stdout.splitlines() if line.strip()]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Agent:
    id: str
    slug: str


@dataclass
class Battery:
    """The started server plus helpers to make agents, run scripts and look behind them."""

    server: Server
    host_marker: str
    client: httpx.Client
    agents: list[Agent] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.base_url.rsplit(":", 1)[1])

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def instance(self) -> Path:
        return instance_root(DEFAULT_MOUNT_ROOT, self.data_dir)

    def home(self, agent: Agent) -> Path:
        """Where the agent's home is mounted on the host."""
        return self.instance / "homes" / agent.id

    def uid(self, agent: Agent) -> int:
        return sandbox_uid(agent.id)

    def agent(self, **policy: Any) -> Agent:
        """Create an agent with ``runtimePolicy`` ``policy`` and wait until it is ready."""
        resp = self.client.post(AGENTS, json={"name": unique("Attack"), "runtimePolicy": policy})
        assert resp.status_code == 201, resp.text
        doc = resp.json()["agent"]
        made = Agent(doc["id"], doc["slug"])
        self.agents.append(made)
        env = poll(
            lambda: self.client.get(f"{AGENTS}/{made.slug}").json()["environment"],
            lambda e: e["status"] in ("ready", "failed"),
        )
        assert env["status"] == "ready", env
        return made

    def exec(self, agent: Agent, script: str, timeout: int = 30, **extra: Any) -> httpx.Response:
        return self.client.post(
            f"/v1/agents/{agent.id}/exec",
            json={"input": script, "timeoutSeconds": timeout, **extra},
        )

    def sh(self, agent: Agent, script: str, timeout: int = 30, **extra: Any) -> str:
        """Run ``script``, require it to complete, return its stdout."""
        resp = self.exec(agent, script, timeout, **extra)
        assert resp.status_code == 200, resp.text
        text: str = resp.json()["output"]["text"]
        return text

    def failed(self, resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
        """The error envelope of a run that did not complete; returns its ``data``."""
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert body["code"] == code, body
        data: dict[str, Any] = body["data"]
        return data

    def stored(self, run_id: str) -> dict[str, Any]:
        """The run as the store holds it, evidence included (read-only, from the host)."""
        with contextlib.closing(
            sqlite3.connect(f"file:{self.data_dir / 'runyard.db'}?mode=ro", uri=True)
        ) as db:
            row = db.execute(
                "SELECT status, error_code, evidence FROM runs WHERE id = ?", [run_id]
            ).fetchone()
        assert row is not None, run_id
        return {"status": row[0], "errorCode": row[1], "evidence": json.loads(row[2] or "{}")}

    def run_ids(self) -> list[str]:
        return stored_run_ids(self.data_dir)

    def delete(self, agent: Agent) -> httpx.Response:
        resp = self.client.request(
            "DELETE", f"{AGENTS}/{agent.slug}", json={"confirmationSlug": agent.slug}
        )
        if resp.status_code == 200 and agent in self.agents:
            self.agents.remove(agent)
        return resp

    def healthy(self) -> bool:
        return self.server.proc.poll() is None and (
            httpx.get(f"{self.server.base_url}/healthz", timeout=10).status_code == 200
        )


def stored_run_ids(data_dir: Path) -> list[str]:
    """Every run id of an instance, read from its SQLite database on the host."""
    with contextlib.closing(
        sqlite3.connect(f"file:{data_dir / 'runyard.db'}?mode=ro", uri=True)
    ) as db:
        return [row[0] for row in db.execute("SELECT id FROM runs")]


def _requirements() -> str | None:
    if os.geteuid() != 0:
        return "the bwrap substrate with per-agent uids, cgroups and home volumes needs root"
    missing = [t for t in ("bwrap", "socat", "setpriv", "mkfs.ext4") if shutil.which(t) is None]
    if missing:
        return f"sandbox tools missing: {', '.join(missing)}"
    if not (CGROUP_ROOT / "cgroup.controllers").exists() and not (CGROUP_ROOT / "pids").is_dir():
        return "no usable cgroup hierarchy"
    return None


def clean_instance(data_dir: Path, run_ids: list[str]) -> None:
    """Remove what an instance leaves on the host: home mounts, run dirs, run cgroups, images."""
    root = instance_root(DEFAULT_MOUNT_ROOT, data_dir)
    homes = root / "homes"
    if homes.is_dir():
        for home in homes.iterdir():
            if os.path.ismount(home):
                subprocess.run(["umount", str(home)], capture_output=True, check=False)
            with contextlib.suppress(OSError):
                home.rmdir()
    for run_id in run_ids:
        for ctrl_dir in CGROUP_ROOT.glob(f"*/runyard/{run_id}"):
            with contextlib.suppress(OSError):
                ctrl_dir.rmdir()
        with contextlib.suppress(OSError):
            (CGROUP_ROOT / "runyard" / run_id).rmdir()
    if not any(os.path.ismount(p) for p in homes.glob("*")):
        shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(data_dir / "agents", ignore_errors=True)


@pytest.fixture(scope="session")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Battery]:
    """One ``runyard up`` on bwrap for the whole battery, torn down completely after it."""
    reason = _requirements()
    if reason:
        pytest.skip(f"sandbox attack battery needs a real bwrap host: {reason}")
    marker = unique("host-secret")
    data_dir = tmp_path_factory.mktemp("attacks") / "data"
    server = start_up(
        data_dir,
        {"RUNYARD_SANDBOX": "bwrap", "RUNYARD_HEARTBEAT_SECONDS": "1", MARKER_VAR: marker},
    )
    client = server.client()
    made = Battery(server, marker, client)
    try:
        yield made
    finally:
        for agent in list(made.agents):
            with contextlib.suppress(httpx.HTTPError):
                made.delete(agent)
        client.close()
        server.stop()
        clean_instance(data_dir, made.run_ids())


@pytest.fixture(scope="session")
def attacker(battery: Battery) -> Agent:
    """A deny_all agent with small limits: 256 MiB, 1 GiB of disk, 64 pids."""
    return battery.agent(resourceLimits={"memoryMiB": 256, "diskGiB": 1, "pids": 64})


@pytest.fixture(scope="session")
def victim(battery: Battery) -> tuple[Agent, str]:
    """Another agent with a secret in its home; returns the agent and the secret."""
    agent = battery.agent(resourceLimits={"diskGiB": 1})
    secret = unique("victim-secret")
    battery.sh(agent, f"printf %s {secret} > ~/secret.txt; chmod 644 ~/secret.txt")
    return agent, secret


@pytest.fixture(scope="session")
def allowlisted(battery: Battery) -> Agent:
    return battery.agent(
        resourceLimits={"diskGiB": 1},
        networkPolicy={"mode": "allowlist", "allowList": ["example.com"]},
    )


@pytest.fixture(scope="session")
def open_net(battery: Battery) -> Agent:
    return battery.agent(resourceLimits={"diskGiB": 1}, networkPolicy={"mode": "allow_all"})
