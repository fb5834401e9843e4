"""The walking skeleton over HTTP: create an agent, exec a prompt, read the run back."""

from __future__ import annotations

from tests.conftest import Server


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
