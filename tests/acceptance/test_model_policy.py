"""Model policy: known providers, a base URL for openai-compatible, per-run model overrides."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Server

SHELL_ONLY = [{"harnessName": "shell", "enabled": True, "role": "default"}]


def _create(server: Server, policy: dict[str, Any]) -> Any:
    with server.client() as c:
        return c.post(
            "/v1/workspaces/default/agents",
            json={
                "name": f"Model {uuid.uuid4().hex[:8]}",
                "modelPolicy": policy,
                "harnessTargets": SHELL_ONLY,
            },
        )


def test_policy_validation(server: Server) -> None:
    assert _create(server, {"provider": "acme", "model": "m"}).status_code == 400
    missing = _create(server, {"provider": "openai-compatible", "model": "llama"})
    assert missing.status_code == 400 and "baseUrl" in missing.json()["message"]
    assert _create(server, {"provider": "openai", "baseUrl": "file:///etc"}).status_code == 400
    plain = _create(server, {"provider": "openai", "model": "gpt-test"})
    assert plain.json()["agent"]["modelPolicy"] == {"provider": "openai", "model": "gpt-test"}
    local = _create(
        server,
        {"provider": "openai-compatible", "model": "llama", "baseUrl": "http://127.0.0.1:8000/v1"},
    )
    assert local.status_code == 201
    assert local.json()["agent"]["modelPolicy"]["baseUrl"] == "http://127.0.0.1:8000/v1"


def test_a_run_may_pick_only_an_allowed_model(server: Server) -> None:
    made = _create(
        server, {"provider": "openai", "model": "gpt-main", "allowedModels": ["gpt-mini"]}
    )
    agent_id = made.json()["agent"]["id"]
    with server.client() as c:
        refused = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "true", "model": "gpt-x"})
        assert refused.status_code == 400 and refused.json()["data"]["field"] == "model"
        for model in ("gpt-mini", "gpt-main"):
            ok = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "true", "model": model})
            assert ok.status_code == 200, ok.text
