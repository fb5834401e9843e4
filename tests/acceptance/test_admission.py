"""``/exec`` as the admission trigger: 503 while the environment cannot be made ready.

``runyard serve`` alone has no worker, so a new agent's environment stays
``pending``: ``/exec`` must hold briefly, then answer the reference's
retryable 503, and ``/status`` must report it without starting anything.
Once a worker joins (same SQLite data dir, another process), the same call
succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, runyard_cmd, wait_healthy


@pytest.fixture
def split(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "RUNYARD_SANDBOX": "process",
        "RUNYARD_ADMISSION_WAIT_SECONDS": "0.5",
        "RUNYARD_POLL_SECONDS": "0.2",
    }
    made = subprocess.run(
        [*runyard_cmd(), "admin", "create-workspace", "adm", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    key = json.loads(made.stdout)["workspaceKey"]
    port = free_port()
    log = tmp_path / "serve.log"
    procs: list[subprocess.Popen[bytes]] = []
    with log.open("wb") as fh:
        procs.append(
            subprocess.Popen(
                [*runyard_cmd(), "serve", "--data-dir", str(data), "--port", str(port)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, procs[0], log)
        yield url, key, data
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)


def test_exec_waits_then_503_until_a_worker_provisions(
    split: tuple[str, str, Path], tmp_path: Path
) -> None:
    url, key, data = split
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        created = c.post("/v1/workspaces/adm/agents", json={"name": "Admit Me"})
        assert created.status_code == 201
        agent_id = created.json()["agent"]["id"]
        assert created.json()["environment"]["status"] == "pending"

        status = c.get(f"/v1/agents/{agent_id}/status").json()
        assert status["ok"] is False and status["status"] == "pending"

        refused = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "echo hi"})
        assert refused.status_code == 503
        body = refused.json()
        assert body["code"] == "SERVICE_UNAVAILABLE"
        assert body["data"]["reason"] == "runtime_admission_provisioning"
        assert body["data"]["retryable"] is True
        assert body["data"]["substrateProvider"] == "process"
        assert c.get(f"/v1/agents/{agent_id}/runs").json()["runs"] == []

        env = {**os.environ, "RUNYARD_SANDBOX": "process", "RUNYARD_POLL_SECONDS": "0.2"}
        with (tmp_path / "worker.log").open("wb") as fh:
            worker = subprocess.Popen(
                [*runyard_cmd(), "worker", "--data-dir", str(data)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            answer = None
            for _ in range(100):
                answer = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "echo hi"})
                if answer.status_code != 503:
                    break
            assert answer is not None and answer.status_code == 200, answer.text
            assert answer.json()["output"]["text"] == "hi\n"
            assert c.get(f"/v1/agents/{agent_id}/status").json() == {
                **status,
                "ok": True,
                "status": "ready",
            }
        finally:
            worker.terminate()
            worker.wait(timeout=20)
