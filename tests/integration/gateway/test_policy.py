"""The agent's model policy and the credential boundary: refusals, overrides, stripped
client credentials, malformed requests, socket permissions."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from runyard.domain.policies import ModelPolicy
from runyard.gateway import GatewayPolicy, GatewaySession, ModelNotAllowed
from tests.fakes.upstream import FakeUpstream, reply
from tests.integration.gateway.kit import (
    KEY,
    anthropic_policy,
    gateway,
    openai_policy,
    run,
)


def test_a_model_outside_the_policy_is_refused_before_the_upstream(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, GatewaySession]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (session, client):
            chat = await client.post(
                "/v1/chat/completions", json={"model": "gpt-expensive", "messages": []}
            )
            streamed = await client.post(
                "/v1/responses", json={"model": "gpt-expensive", "input": "", "stream": True}
            )
            return chat, streamed, session

    chat, streamed, session = run(scenario())
    for response in (chat, streamed):
        assert response.status_code == 403
        err = response.json()["error"]
        assert err["type"] == "permission_error"
        assert err["code"] == "model_not_allowed"
        assert "gpt-expensive" in err["message"]
        assert "gpt-extra, gpt-test" in err["message"]
    assert fake.requests == []
    assert [(c["status"], c["model"], c["inputTokens"]) for c in session.calls] == [
        (403, "gpt-expensive", None),
        (403, "gpt-expensive", None),
    ]
    assert "not allowed" in session.calls[0]["error"]


def test_anthropic_refusals_use_anthropic_errors(fake: FakeUpstream, sock_dir: Path) -> None:
    async def scenario() -> httpx.Response:
        async with gateway(anthropic_policy(fake.anthropic_base_url), sock_dir) as (_, client):
            return await client.post("/v1/messages", json={"model": "claude-opus", "messages": []})

    response = run(scenario())
    assert response.status_code == 403
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "permission_error"
    assert "claude-opus" in body["error"]["message"]
    assert fake.requests == []


def test_extra_allowed_models_and_the_per_run_override(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script(reply("x"), reply("y"))
    policy = openai_policy(fake.openai_base_url).with_model("gpt-extra")

    async def scenario() -> None:
        async with gateway(policy, sock_dir) as (_, client):
            assert (await client.post("/v1/chat/completions", json={})).status_code == 200
            response = await client.post("/v1/chat/completions", json={"model": "gpt-test"})
            assert response.status_code == 200

    run(scenario())
    assert [r.model for r in fake.requests] == ["gpt-extra", "gpt-test"]
    assert policy.model == "gpt-extra"
    assert policy.allowed_models == {"gpt-test", "gpt-extra"}
    with pytest.raises(ModelNotAllowed):
        policy.with_model("gpt-expensive")


def test_the_policy_comes_from_the_agents_model_policy(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script(reply("x"))
    agent_policy = ModelPolicy(
        provider="openai-compatible",
        model="llama-3",
        baseUrl=fake.openai_base_url,
        allowedModels=["llama-3-big"],
    )
    policy = GatewayPolicy.from_model_policy(agent_policy, run_id="run_gw", api_key=KEY)

    async def scenario() -> list[int]:
        async with gateway(policy, sock_dir) as (_, client):
            return [
                (await client.post("/v1/chat/completions", json=body)).status_code
                for body in ({}, {"model": "llama-3-big"}, {"model": "llama-4"})
            ]

    fake.script(reply("y"))
    assert run(scenario()) == [200, 200, 403]
    assert [r.model for r in fake.requests] == ["llama-3", "llama-3-big"]


def test_client_credentials_are_stripped(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script(reply("x"), reply("y"))

    async def scenario() -> None:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (_, client):
            response = await client.post(
                "/v1/chat/completions?api_key=sk-mine&api-version=2024-10-21",
                json={"messages": []},
                headers={
                    "authorization": "Bearer sk-sandbox-chosen",
                    "x-api-key": "sk-sandbox-chosen",
                    "api-key": "sk-sandbox-chosen",
                    "openai-organization": "org-sandbox",
                    "cookie": "session=sandbox",
                    "openai-beta": "assistants=v2",
                },
            )
            assert response.status_code == 200
            response = await client.post(
                "/v1/responses", json={"input": ""}, headers={"authorization": "Bearer nope"}
            )
            assert response.status_code == 200

    run(scenario())
    first, second = fake.requests
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert second.headers["authorization"] == f"Bearer {KEY}"
    for header in ("x-api-key", "api-key", "openai-organization", "cookie"):
        assert header not in first.headers
    assert first.headers["openai-beta"] == "assistants=v2"
    assert first.query == "api-version=2024-10-21"
    assert "sk-sandbox-chosen" not in json.dumps(first.headers)


def test_a_protocol_of_the_other_family_is_a_clear_400(fake: FakeUpstream, sock_dir: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (_, client):
            on_openai = await client.post("/v1/messages", json={"messages": []})
        async with gateway(anthropic_policy(fake.anthropic_base_url), sock_dir) as (_, client):
            on_anthropic = await client.post("/v1/chat/completions", json={"messages": []})
        return on_openai, on_anthropic

    on_openai, on_anthropic = run(scenario())
    assert on_openai.status_code == 400
    assert on_openai.json()["type"] == "error"
    assert "POST /v1/chat/completions" in on_openai.json()["error"]["message"]
    assert "does not translate" in on_openai.json()["error"]["message"]
    assert on_anthropic.status_code == 400
    assert on_anthropic.json()["error"]["code"] == "protocol_mismatch"
    assert "POST /v1/messages" in on_anthropic.json()["error"]["message"]
    assert fake.requests == []


def test_malformed_requests_are_4xx_and_never_reach_the_upstream(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    async def scenario() -> list[httpx.Response]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (_, client):
            return [
                await client.post("/v1/chat/completions", content=b"{not json"),
                await client.post("/v1/chat/completions", json=["a", "list"]),
                await client.post("/v1/chat/completions", json={"model": 42}),
                await client.get("/v1/chat/completions"),
                await client.post("/v1/embeddings", json={}),
            ]

    statuses = [r.status_code for r in run(scenario())]
    assert statuses == [400, 400, 400, 405, 404]
    assert fake.requests == []


def test_a_chunked_request_body_is_read_whole(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script(reply("ok"))
    payload = json.dumps({"messages": [{"role": "user", "content": "x" * 200_000}]}).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65_536):
            yield payload[start : start + 65_536]

    async def scenario() -> httpx.Response:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (_, client):
            return await client.post("/v1/chat/completions", content=pieces())

    assert run(scenario()).status_code == 200
    assert len(fake.requests[0].body["messages"][0]["content"]) == 200_000


def test_the_socket_is_private_to_its_owner(fake: FakeUpstream, sock_dir: Path) -> None:
    async def scenario() -> tuple[int, int]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir, os.getuid()) as (s, _):
            private = stat.S_IMODE(s.socket_path.stat().st_mode)
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (s, _):
            shared = stat.S_IMODE(s.socket_path.stat().st_mode)
        return private, shared

    assert run(scenario()) == (0o600, 0o666)


def test_an_oversized_body_is_a_413_in_the_protocols_shape(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        policy = openai_policy(fake.openai_base_url)
        async with gateway(policy, sock_dir, max_body=4096) as (_, client):
            chat = await client.post("/v1/chat/completions", json=big)
        policy = anthropic_policy(fake.anthropic_base_url)
        async with gateway(policy, sock_dir, max_body=4096) as (_, client):
            messages = await client.post("/v1/messages", json=big)
        return chat, messages

    chat, messages = run(scenario())
    assert chat.status_code == 413
    assert chat.json()["error"]["code"] == "request_too_large"
    assert messages.status_code == 413
    assert messages.json()["error"]["type"] == "request_too_large"
    assert fake.requests == []
