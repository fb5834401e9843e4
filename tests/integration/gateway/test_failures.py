"""Upstream failures and interruptions: clear errors in each protocol's shape, every call
recorded, and the provider key in no answer, record or log."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard.gateway import Gateway, GatewaySession
from tests.fakes.upstream import FakeUpstream, error, reply
from tests.integration.gateway.kit import (
    KEY,
    anthropic_policy,
    assert_no_key,
    closed_port_url,
    gateway,
    openai_policy,
    run,
    sse,
)


def test_an_unreachable_upstream_is_a_502_and_is_recorded(
    sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> tuple[httpx.Response, httpx.Response, GatewaySession]:
        async with gateway(openai_policy(closed_port_url()), sock_dir) as (session, client):
            plain = await client.post("/v1/chat/completions", json={"messages": []})
            streamed = await client.post(
                "/v1/chat/completions", json={"messages": [], "stream": True}
            )
            return plain, streamed, session

    plain, streamed, session = run(scenario())
    for response in (plain, streamed):
        assert response.status_code == 502
        err = response.json()["error"]
        assert err["code"] == "upstream_unavailable"
        assert "cannot reach the openai upstream" in err["message"]
    assert [(c["status"], c["stream"]) for c in session.calls] == [
        ("error", False),
        ("error", True),
    ]
    assert all("cannot reach" in c["error"] for c in session.calls)
    assert session.token_usage()["totalTokens"] == 0
    assert_no_key(plain.text, streamed.text, json.dumps(session.calls), caplog.text)


def test_upstream_errors_pass_through_their_4xx_status_without_the_key(
    fake: FakeUpstream, sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script(
        error(400, f"context too long for key {KEY}", type="invalid_request_error"),
        error(429, "slow down", headers={"retry-after": "7"}),
        error(500, f"internal oops near {KEY[:14]}"),
    )

    async def scenario() -> tuple[list[httpx.Response], GatewaySession]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (session, client):
            return [
                await client.post("/v1/chat/completions", json={"messages": []}),
                await client.post("/v1/chat/completions", json={"messages": [], "stream": True}),
                await client.post("/v1/responses", json={"input": ""}),
            ], session

    (bad, limited, broken), session = run(scenario())
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert "context too long for key [redacted]" in bad.json()["error"]["message"]
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert "slow down" in limited.json()["error"]["message"]
    assert broken.status_code == 502
    assert "answered HTTP 500" in broken.json()["error"]["message"]
    assert [c["status"] for c in session.calls] == [400, 429, 500]
    assert_no_key(bad.text, limited.text, broken.text, json.dumps(session.calls), caplog.text)


def test_a_rejected_credential_is_reported_without_echoing_it(
    fake: FakeUpstream, sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-live-WRONGwrongWRONGwrong9876"

    async def scenario() -> tuple[httpx.Response, httpx.Response, GatewaySession]:
        async with gateway(openai_policy(fake.openai_base_url, api_key=wrong), sock_dir) as (
            session,
            client,
        ):
            openai = await client.post("/v1/chat/completions", json={"messages": []})
        policy = anthropic_policy(fake.anthropic_base_url, api_key=wrong)
        async with gateway(policy, sock_dir) as (_, client):
            anthropic = await client.post("/v1/messages", json={"messages": []})
        return openai, anthropic, session

    openai, anthropic, session = run(scenario())
    # The fake echoed a masked form of the key it got, as OpenAI does.
    assert fake.requests[0].headers["authorization"] == f"Bearer {wrong}"
    assert openai.status_code == 401
    assert openai.json()["error"]["type"] == "authentication_error"
    assert "refused runyard's credential" in openai.json()["error"]["message"]
    assert anthropic.status_code == 401
    assert anthropic.json()["error"]["type"] == "authentication_error"
    for text in (openai.text, anthropic.text, json.dumps(session.calls), caplog.text):
        assert wrong not in text
        assert wrong[-4:] not in text
        assert wrong[:3] + "*" not in text


def test_a_stream_that_breaks_off_ends_with_an_error_event_and_is_recorded(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    fake.script(reply("this stream will break", cut=True), reply("so will this", cut=True))

    async def scenario() -> tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (session, client):
            chat = await client.post("/v1/chat/completions", json={"stream": True})
            assert chat.status_code == 200
            chat_calls = session.calls
        policy = anthropic_policy(fake.anthropic_base_url)
        async with gateway(policy, sock_dir) as (session, client):
            messages = await client.post("/v1/messages", json={"stream": True})
            assert messages.status_code == 200
            return chat.text, messages.text, chat_calls, session.calls

    chat, messages, chat_calls, message_calls = run(scenario())
    chat_events = sse(chat)
    assert chat_events[0][1]["object"] == "chat.completion.chunk"  # the relayed first half
    assert chat_events[-1] == (
        None,
        {
            "error": {
                "message": "the upstream stream broke off (RemoteProtocolError)",
                "type": "api_error",
                "param": None,
                "code": "upstream_unavailable",
            }
        },
    )
    message_events = sse(messages)
    assert message_events[0][0] == "message_start"
    assert message_events[-1][0] == "error"
    assert message_events[-1][1]["error"]["type"] == "api_error"
    for (call,) in (chat_calls, message_calls):
        assert call["status"] == "error"
        assert "broke off" in call["error"]
    assert message_calls[0]["inputTokens"] == 21  # message_start came before the break


def test_closing_the_session_during_a_call_records_it(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script(reply("slow", hold=True))

    async def scenario() -> GatewaySession:
        gw = Gateway()
        path = sock_dir / "gateway.sock"
        session = await gw.open(path, openai_policy(fake.openai_base_url))
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            pending = asyncio.create_task(client.post("/v1/chat/completions", json={}))
            while not fake.requests:  # the call reached the provider
                await asyncio.sleep(0.01)
            await session.close()
            with pytest.raises(httpx.RemoteProtocolError):
                await pending
        await gw.aclose()
        return session

    try:
        session = run(scenario())
    finally:
        fake.release()
    (call,) = session.calls
    assert (call["status"], call["model"]) == ("error", "gpt-test")
    assert "session closed" in call["error"]


def test_closing_the_session_mid_stream_records_the_interrupted_call(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    fake.script_openai_chat([reply("a long answer that stalls", hold=True)])

    async def scenario() -> tuple[bytes, GatewaySession]:
        gw = Gateway()
        path = sock_dir / "gateway.sock"
        session = await gw.open(path, openai_policy(fake.openai_base_url))
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
            client.stream(
                "POST", "/v1/chat/completions", json={"messages": [], "stream": True}
            ) as response,
        ):
            chunks = response.aiter_bytes()
            first = await anext(chunks)
            await session.close()
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in chunks:
                    pass
        await gw.aclose()
        return first, session

    try:
        first, session = run(scenario())
    finally:
        fake.release()
    assert first.startswith(b"data: ")
    (call,) = session.calls
    assert call["stream"] is True
    assert call["status"] == 200
    assert "ended early" in call["error"]
    assert call["inputTokens"] is None  # the usage chunk never came
    assert not (sock_dir / "gateway.sock").exists()
