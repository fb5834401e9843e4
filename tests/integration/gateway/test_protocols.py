"""Each client protocol through a real socket to the fake provider, streaming and not,
with the injected key and the usage the provider reported."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from runyard.gateway import GatewaySession
from tests.fakes.upstream import FakeUpstream, ToolCall, reply, tool_call
from tests.integration.gateway.kit import (
    KEY,
    anthropic_policy,
    gateway,
    openai_policy,
    run,
    sse,
)


def test_chat_completion_is_forwarded_with_the_injected_key_and_metered(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    fake.script_openai_chat([reply("Hello from the fake.", input_tokens=30, output_tokens=6)])

    async def scenario() -> tuple[httpx.Response, GatewaySession]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (session, client):
            response = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]},
            )
            return response, session

    response, session = run(scenario())
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello from the fake."
    (sent,) = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["messages"] == [{"role": "user", "content": "hi"}]
    assert session.token_usage() == {
        "source": "provider_response",
        "inputTokens": 30,
        "outputTokens": 6,
        "reasoningTokens": 0,
        "cacheReadTokens": 0,
        "cacheWriteTokens": None,
        "totalTokens": 36,
    }
    (call,) = session.calls
    assert call["model"] == "gpt-test"
    assert call["protocol"] == "chat_completions"
    assert call["status"] == 200
    assert (call["inputTokens"], call["outputTokens"], call["stream"]) == (30, 6, False)
    assert call["startedAt"] <= call["completedAt"]
    assert call["latencyMs"] >= 0
    assert "error" not in call


def test_chat_stream_is_relayed_and_metered_from_the_usage_chunk(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    fake.script_openai_chat([reply("one two three four", input_tokens=11, output_tokens=4)])

    async def scenario() -> tuple[str, GatewaySession]:
        async with (
            gateway(openai_policy(fake.openai_base_url), sock_dir) as (session, client),
            client.stream(
                "POST", "/v1/chat/completions", json={"messages": [], "stream": True}
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return (await response.aread()).decode(), session

    text, session = run(scenario())
    events = sse(text)
    assert events[-1] == (None, "[DONE]")
    chunks = [data for _, data in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == (
        "one two three four"
    )
    (sent,) = fake.requests
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["model"] == "gpt-test"  # the default: the client named none
    assert session.usage.input_tokens == 11
    assert session.usage.output_tokens == 4
    (call,) = session.calls
    assert (call["status"], call["stream"], call["inputTokens"], call["outputTokens"]) == (
        200,
        True,
        11,
        4,
    )


def test_chat_tool_calls_come_through_streaming_and_not(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script_openai_chat(
        [
            tool_call("read_file", {"path": "README.md"}),
            reply(
                tool_calls=[ToolCall("ls", {"dir": "."}), ToolCall("grep", {"pattern": "x"})],
            ),
        ]
    )

    async def scenario() -> tuple[dict[str, Any], str]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (_, client):
            plain = await client.post("/v1/chat/completions", json={"messages": []})
            streamed = await client.post(
                "/v1/chat/completions", json={"messages": [], "stream": True}
            )
            return plain.json(), streamed.text

    plain, streamed = run(scenario())
    choice = plain["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "read_file"
    assert json.loads(call["function"]["arguments"]) == {"path": "README.md"}

    calls: dict[int, dict[str, str]] = {}
    for _, data in sse(streamed):
        if data == "[DONE]" or not data["choices"]:
            continue
        for delta in data["choices"][0]["delta"].get("tool_calls", []):
            entry = calls.setdefault(delta["index"], {"name": "", "arguments": ""})
            entry["name"] += delta.get("function", {}).get("name", "")
            entry["arguments"] += delta.get("function", {}).get("arguments", "")
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("ls", {"dir": "."}),
        ("grep", {"pattern": "x"}),
    ]


def test_responses_streaming_and_not_are_metered_with_reasoning_and_cache(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    fake.script_openai_responses(
        [
            reply("plain", input_tokens=50, output_tokens=20, reasoning_tokens=8),
            reply("streamed answer", input_tokens=40, output_tokens=10, cache_read_tokens=32),
        ]
    )

    async def scenario() -> tuple[dict[str, Any], str, GatewaySession]:
        policy = openai_policy(fake.openai_base_url, provider="openai-compatible")
        async with gateway(policy, sock_dir) as (session, client):
            plain = await client.post("/v1/responses", json={"model": "gpt-test", "input": "hi"})
            streamed = await client.post("/v1/responses", json={"input": "hi", "stream": True})
            assert streamed.status_code == 200
            return plain.json(), streamed.text, session

    plain, streamed, session = run(scenario())
    assert plain["output"][0]["content"][0]["text"] == "plain"
    events = sse(streamed)
    deltas = [d["delta"] for name, d in events if name == "response.output_text.delta"]
    assert "".join(deltas) == "streamed answer"
    assert events[-1][0] == "response.completed"
    assert [r.path for r in fake.requests] == ["/v1/responses", "/v1/responses"]
    assert "stream_options" not in fake.requests[1].body  # only chat needs it
    usage = session.token_usage()
    assert (usage["inputTokens"], usage["outputTokens"], usage["totalTokens"]) == (90, 30, 120)
    assert (usage["reasoningTokens"], usage["cacheReadTokens"]) == (8, 32)
    assert [(c["protocol"], c["stream"], c["inputTokens"]) for c in session.calls] == [
        ("responses", False, 50),
        ("responses", True, 40),
    ]


def test_anthropic_messages_streaming_and_not_with_injected_headers(
    fake: FakeUpstream, sock_dir: Path
) -> None:
    fake.script_anthropic_messages(
        [
            reply(
                "hi there",
                input_tokens=12,
                output_tokens=5,
                cache_read_tokens=100,
                cache_write_tokens=7,
            ),
            tool_call("bash", {"command": "ls"}, text="Let me look.", output_tokens=15),
        ]
    )

    async def scenario() -> tuple[dict[str, Any], str, GatewaySession]:
        policy = anthropic_policy(fake.anthropic_base_url)
        async with gateway(policy, sock_dir) as (session, client):
            plain = await client.post(
                "/v1/messages",
                json={"model": "claude-test", "max_tokens": 100, "messages": []},
                headers={"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024"},
            )
            streamed = await client.post(
                "/v1/messages?beta=true&key=sneaky",
                json={"max_tokens": 100, "messages": [], "stream": True},
            )
            return plain.json(), streamed.text, session

    plain, streamed, session = run(scenario())
    assert plain["content"] == [{"type": "text", "text": "hi there"}]
    first, second = fake.requests
    assert first.headers["x-api-key"] == KEY
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.headers["anthropic-beta"] == "tools-2024"
    assert "authorization" not in first.headers
    assert second.headers["anthropic-version"] == "2023-06-01"  # injected: client sent none
    assert second.query == "beta=true"  # only allowlisted query parameters go upstream
    assert second.body["model"] == "claude-test"
    events = sse(streamed)
    assert next(name for name, _ in events) == "message_start"
    tool_json = "".join(
        d["delta"]["partial_json"]
        for name, d in events
        if name == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(tool_json) == {"command": "ls"}
    assert session.token_usage() == {
        "source": "provider_response",
        "inputTokens": 12 + 21,
        "outputTokens": 5 + 15,  # the stream's output is message_delta's, not message_start's 1
        "reasoningTokens": None,
        "cacheReadTokens": 100,
        "cacheWriteTokens": 7,
        "totalTokens": 12 + 21 + 5 + 15,
    }
    assert [(c["protocol"], c["stream"], c["outputTokens"]) for c in session.calls] == [
        ("messages", False, 5),
        ("messages", True, 15),
    ]


def test_usage_adds_up_over_several_calls(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script(
        reply("a", input_tokens=10, output_tokens=1),
        reply("b", input_tokens=20, output_tokens=2, cache_read_tokens=5),
        reply("c", input_tokens=30, output_tokens=3, reasoning_tokens=2),
        reply("d", input_tokens=40, output_tokens=4),
    )

    async def scenario() -> GatewaySession:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (session, client):
            for path, stream in [
                ("/v1/chat/completions", False),
                ("/v1/chat/completions", True),
                ("/v1/responses", False),
                ("/v1/responses", True),
            ]:
                response = await client.post(path, json={"input": "x", "stream": stream})
                assert response.status_code == 200
            return session

    session = run(scenario())
    assert session.token_usage() == {
        "source": "provider_response",
        "inputTokens": 100,
        "outputTokens": 10,
        "reasoningTokens": 2,
        "cacheReadTokens": 5,
        "cacheWriteTokens": None,
        "totalTokens": 110,
    }
    assert [c["inputTokens"] for c in session.calls] == [10, 20, 30, 40]
    assert sum(c["outputTokens"] for c in session.calls) == 10


def test_concurrent_calls_are_each_recorded(fake: FakeUpstream, sock_dir: Path) -> None:
    fake.script(*(reply(str(n), input_tokens=n, output_tokens=1) for n in range(1, 9)))

    async def scenario() -> GatewaySession:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (session, client):
            responses = await asyncio.gather(
                *(
                    client.post("/v1/chat/completions", json={"stream": n % 2 == 0})
                    for n in range(8)
                )
            )
            assert [r.status_code for r in responses] == [200] * 8
            return session

    session = run(scenario())
    assert sorted(c["inputTokens"] for c in session.calls) == list(range(1, 9))
    assert session.token_usage()["totalTokens"] == sum(range(1, 9)) + 8


def test_models_lists_the_allowed_models(fake: FakeUpstream, sock_dir: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with gateway(openai_policy(fake.openai_base_url), sock_dir) as (_, client):
            return (
                await client.get("/v1/models"),
                await client.get("/v1/models/gpt-extra"),
                await client.get("/v1/models/gpt-expensive"),
            )

    listing, one, missing = run(scenario())
    assert [m["id"] for m in listing.json()["data"]] == ["gpt-extra", "gpt-test"]
    assert listing.json()["object"] == "list"
    assert one.json()["id"] == "gpt-extra"
    assert missing.status_code == 404
    assert fake.requests == []
