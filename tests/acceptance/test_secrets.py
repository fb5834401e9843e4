"""Secrets: sealed at rest, masked on read, projected into runs, redacted from run output."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Server

VALUE = "tok-" + uuid.uuid4().hex  # unique per session, so the checks below mean something


def _agent(server: Server, name: str, **extra: Any) -> dict[str, Any]:
    with server.client() as c:
        resp = c.post("/v1/workspaces/default/agents", json={"name": name, **extra})
        assert resp.status_code == 201, resp.text
        doc: dict[str, Any] = resp.json()["agent"]
        return doc


def test_secret_lifecycle_is_masked(server: Server) -> None:
    agent = _agent(server, f"Secret Holder {uuid.uuid4().hex[:6]}")
    with server.client() as c:
        made = c.put(
            "/v1/workspaces/default/secrets/deploy-token",
            json={"projectionName": "DEPLOY_TOKEN", "value": VALUE, "agentIds": [agent["id"]]},
        )
        assert made.status_code == 201, made.text
        doc = made.json()["secret"]
        assert doc["projectionName"] == "DEPLOY_TOKEN" and doc["agentIds"] == [agent["id"]]
        assert doc["value"] == "********" and doc["valueLength"] == len(VALUE)
        for resp in (
            made,
            c.get("/v1/workspaces/default/secrets"),
            c.get("/v1/workspaces/default/secrets/deploy-token"),
        ):
            assert resp.status_code == 200 or resp is made
            assert VALUE not in resp.text
        kept = c.put(
            "/v1/workspaces/default/secrets/deploy-token",
            json={"projectionName": "DEPLOY_TOKEN_V2"},
        )
        assert kept.status_code == 200
        assert kept.json()["secret"]["valueLength"] == len(VALUE)
        assert kept.json()["secret"]["agentIds"] == []
        assert c.delete("/v1/workspaces/default/secrets/deploy-token").status_code == 200
        assert c.get("/v1/workspaces/default/secrets/deploy-token").status_code == 404
        assert c.delete("/v1/workspaces/default/secrets/deploy-token").status_code == 404
    raw = (server.data_dir / "runyard.db").read_bytes()
    wal = server.data_dir / "runyard.db-wal"
    assert VALUE.encode() not in raw + (wal.read_bytes() if wal.exists() else b"")


def test_bad_secret_requests_are_clear_400s(server: Server) -> None:
    with server.client() as c:
        cases = [
            ("no-value", {"projectionName": "X_TOKEN"}),
            ("reserved", {"projectionName": "PATH", "value": "x" * 8}),
            ("runyard", {"projectionName": "RUNYARD_RUN_ID", "value": "x" * 8}),
            ("lower", {"projectionName": "lower", "value": "x" * 8}),
            ("ghost", {"projectionName": "X_TOKEN", "value": "x" * 8, "agentIds": ["agent_no"]}),
            ("extra", {"projectionName": "X_TOKEN", "value": "x" * 8, "extra": 1}),
        ]
        for name, body in cases:
            resp = c.put(f"/v1/workspaces/default/secrets/{name}", json=body)
            assert resp.status_code == 400, (name, resp.text)
            assert resp.json()["code"] == "BAD_REQUEST"
        bad_name = c.put("/v1/workspaces/default/secrets/..%2Fx", json=cases[1][1])
        assert bad_name.status_code in (400, 404)


def test_secrets_are_projected_and_redacted_and_provider_keys_withheld(server: Server) -> None:
    agent = _agent(
        server,
        f"Leaky {uuid.uuid4().hex[:6]}",
        modelPolicy={"provider": "openai", "model": "gpt-test"},
        harnessTargets=[{"harnessName": "shell", "enabled": True, "role": "default"}],
    )
    with server.client() as c:
        for name, projection, value in (
            ("leaky-token", "LEAKY_TOKEN", VALUE),
            ("leaky-openai", "OPENAI_API_KEY", VALUE + "-provider"),
        ):
            resp = c.put(
                f"/v1/workspaces/default/secrets/{name}",
                json={"projectionName": projection, "value": value, "agentIds": [agent["id"]]},
            )
            assert resp.status_code == 201, resp.text
        script = (
            'echo "plain=$LEAKY_TOKEN"\n'
            'printf %s "$LEAKY_TOKEN" | base64 -w0; echo\n'
            'python3 -c "import os,urllib.parse as u;'
            "print(u.quote('x/' + os.environ['LEAKY_TOKEN']))\"\n"
            'echo "provider=${OPENAI_API_KEY:-absent}"\n'
            'echo "$LEAKY_TOKEN" >&2; exit 3\n'
        )
        resp = c.post(f"/v1/agents/{agent['id']}/exec", json={"input": script})
        assert resp.status_code == 502, resp.text
        run = c.get(f"/v1/agents/{agent['id']}/runs/{resp.json()['data']['runId']}").json()["run"]
        events = c.get(f"/v1/agents/{agent['id']}/runs/{run['id']}/events").json()["events"]
        canvas = c.get(f"/v1/agents/{agent['id']}/runs/{run['id']}/canvas").json()
    output = run["output"]
    streamed = "".join(e["data"]["text"] for e in events if e["type"] == "output_chunk")
    assert streamed == output  # the live chunks are redacted like the output
    assert VALUE not in str(events)
    assert VALUE not in str(canvas)
    assert "plain=[REDACTED:LEAKY_TOKEN]" in output
    assert output.count("[REDACTED:LEAKY_TOKEN]") == 3
    assert "provider=runyard-gateway" in output  # the placeholder, never the real key
    assert VALUE not in str(run)


def test_a_provider_key_unfit_for_http_fails_the_run_clearly(server: Server) -> None:
    agent = _agent(
        server,
        f"Fancy Key {uuid.uuid4().hex[:6]}",
        modelPolicy={"provider": "openai", "model": "gpt-test"},
    )
    with server.client() as c:
        c.put(
            "/v1/workspaces/default/secrets/fancy-key",
            json={"projectionName": "OPENAI_API_KEY", "value": "sk-…", "agentIds": [agent["id"]]},
        )
        resp = c.post(f"/v1/agents/{agent['id']}/exec", json={"input": "hi"})
    assert resp.status_code == 502, resp.text
    run_error = resp.json()["data"]["runError"]
    assert run_error["code"] == "model_unavailable"
    assert "cannot be sent in an HTTP header" in run_error["message"]
