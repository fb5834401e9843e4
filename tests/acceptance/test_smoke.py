"""The walking skeleton over HTTP: create an agent, exec a prompt, read the run back."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx

from tests.conftest import Server, free_port, runyard_cmd, wait_healthy


def test_exec_round_trip(server: Server, agent: dict[str, object]) -> None:
    agent_id = agent["agent"]["id"]  # type: ignore[index]
    with server.client() as c:
        resp = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "echo hello"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["output"] == {"text": "hello\n"}
        run = c.get(f"/v1/agents/{agent_id}/runs/{body['runId']}").json()["run"]
    assert run["status"] == "completed"
    assert run["output"] == "hello\n"
    assert "input" not in run and "prompt" not in run


def test_a_relative_data_dir_works_from_its_cwd(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RUNYARD_SANDBOX": "process"}
    log = tmp_path / "up.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*runyard_cmd(), "up", "--data-dir", "rel-data", "--port", str(port)],
            cwd=tmp_path,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        key = json.loads((tmp_path / "rel-data" / "credentials.json").read_text())["workspaceKey"]
        with httpx.Client(base_url=url, headers={"X-API-KEY": key}, timeout=60) as c:
            agent = c.post("/v1/workspaces/default/agents", json={"name": "Rel"}).json()
            done = c.post(f"/v1/agents/{agent['agent']['id']}/exec", json={"input": "echo ok"})
        assert done.status_code == 200, done.text
        assert done.json()["output"]["text"] == "ok\n"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
