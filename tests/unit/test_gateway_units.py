"""The gateway's pure parts: SSE decoding, usage mapping, policy values, scrubbing, headers."""

from __future__ import annotations

import json

import pytest

from runyard.domain.policies import ModelPolicy
from runyard.gateway import GatewayPolicy, InvalidModelPolicy, ModelNotAllowed, Usage
from runyard.gateway.errors import InvalidModelRequest, scrub
from runyard.gateway.metering import (
    CallRecord,
    Ledger,
    anthropic_usage,
    openai_chat_usage,
    responses_usage,
)
from runyard.gateway.protocols import CHAT_COMPLETIONS, MESSAGES, RESPONSES
from runyard.gateway.sse import SseDecoder, SseEvent

STREAM = (
    b": keep-alive comment\r\n\r\n"
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b"data: line one\ndata: line two\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SseEvent("message_start", '{"a": 1}'),
    SseEvent("message", "line one\nline two"),
    SseEvent("message", "[DONE]"),
]


@pytest.mark.parametrize("split", range(len(STREAM) + 1))
def test_sse_decoding_does_not_depend_on_how_the_bytes_arrive(split: int) -> None:
    decoder = SseDecoder()
    events = decoder.feed(STREAM[:split]) + decoder.feed(STREAM[split:])
    assert events == EXPECTED


def test_sse_byte_by_byte_and_overflow() -> None:
    decoder = SseDecoder()
    events = [e for i in range(len(STREAM)) for e in decoder.feed(STREAM[i : i + 1])]
    assert events == EXPECTED
    small = SseDecoder(max_event=16)
    assert small.feed(b"data: " + b"x" * 64) == []
    assert small.overflowed
    assert small.feed(b"\n\ndata: {}\n\n") == []  # stays off for the rest of the stream


def test_usage_mapping_of_each_provider() -> None:
    chat = openai_chat_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 12},
        }
    )
    assert chat == Usage(100, 20, 12, 64, None)
    responses = responses_usage(
        {
            "input_tokens": 7,
            "output_tokens": 3,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens_details": {"reasoning_tokens": 1},
        }
    )
    assert responses == Usage(7, 3, 1, 2, None)
    anthropic = anthropic_usage(
        {
            "input_tokens": 5,
            "output_tokens": 9,
            "cache_read_input_tokens": 40,
            "cache_creation_input_tokens": 8,
        }
    )
    assert anthropic == Usage(5, 9, None, 40, 8)
    assert openai_chat_usage(None) is None
    assert openai_chat_usage({}) is None
    assert anthropic_usage({"input_tokens": -1, "output_tokens": True}) is None


def test_usage_sums_keep_unreported_fields_null() -> None:
    total = Usage()
    assert total.to_wire() == {
        "source": "provider_response",
        "inputTokens": 0,
        "outputTokens": 0,
        "reasoningTokens": None,
        "cacheReadTokens": None,
        "cacheWriteTokens": None,
        "totalTokens": 0,
    }
    total.add(Usage(10, 2))
    total.add(Usage(5, 1, reasoning_tokens=3))
    assert total.to_wire()["reasoningTokens"] == 3
    assert total.to_wire()["cacheReadTokens"] is None
    assert total.to_wire()["totalTokens"] == 18

    latest = Usage(input_tokens=9, output_tokens=1)
    latest.update_latest(Usage(output_tokens=30))
    assert latest == Usage(9, 30)


def test_stream_events_yield_usage_per_protocol() -> None:
    def event(name: str, data: object) -> SseEvent:
        return SseEvent(name, json.dumps(data))

    assert (
        CHAT_COMPLETIONS.usage_from_event(event("message", {"choices": [], "usage": None})) is None
    )
    assert CHAT_COMPLETIONS.usage_from_event(SseEvent("message", "[DONE]")) is None
    final = event("message", {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    assert CHAT_COMPLETIONS.usage_from_event(final) == Usage(3, 4)
    created = event("response.created", {"response": {"usage": None}})
    assert RESPONSES.usage_from_event(created) is None
    done = event("x", {"response": {"usage": {"input_tokens": 1, "output_tokens": 2}}})
    assert RESPONSES.usage_from_event(done) == Usage(1, 2)
    start = event(
        "message_start",
        {"type": "message_start", "message": {"usage": {"input_tokens": 8, "output_tokens": 1}}},
    )
    assert MESSAGES.usage_from_event(start) == Usage(8, 1)
    delta = event("message_delta", {"type": "message_delta", "usage": {"output_tokens": 44}})
    assert MESSAGES.usage_from_event(delta) == Usage(output_tokens=44)


def test_chat_streams_ask_for_usage_unless_the_client_said_otherwise() -> None:
    body: dict[str, object] = {"stream": True}
    CHAT_COMPLETIONS.prepare(body)
    assert body["stream_options"] == {"include_usage": True}
    body = {"stream": True, "stream_options": {"include_obfuscation": False}}
    CHAT_COMPLETIONS.prepare(body)
    assert body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    body = {"stream": True, "stream_options": {"include_usage": False}}
    CHAT_COMPLETIONS.prepare(body)
    assert body["stream_options"] == {"include_usage": False}
    body = {"stream": False}
    CHAT_COMPLETIONS.prepare(body)
    assert "stream_options" not in body


def test_upstream_headers_carry_only_the_injected_credential() -> None:
    client = {
        "authorization": "Bearer sk-client",
        "x-api-key": "sk-client",
        "cookie": "a=b",
        "anthropic-version": "2024-01-01",
        "anthropic-beta": "x\r\ny: z",
        "accept": "text/event-stream",
    }
    openai = CHAT_COMPLETIONS.upstream_headers("sk-ours", client)
    assert openai == {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "authorization": "Bearer sk-ours",
    }
    anthropic = MESSAGES.upstream_headers("sk-ours", client)
    assert anthropic == {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "anthropic-version": "2024-01-01",
        "x-api-key": "sk-ours",
    }
    local = CHAT_COMPLETIONS.upstream_headers(None, client)
    assert "authorization" not in local
    assert MESSAGES.upstream_headers(None, {"anthropic-version": "latest"}) == {
        "content-type": "application/json",
        "accept": "application/json",
        "anthropic-version": "2023-06-01",
    }


def test_policy_defaults_and_validation() -> None:
    openai = GatewayPolicy(provider="openai", model="gpt-x", run_id="r", api_key="sk-secret")
    assert openai.base_url == "https://api.openai.com/v1"
    assert openai.family == "openai"
    assert openai.allowed_models == {"gpt-x"}
    assert "sk-secret" not in repr(openai)
    anthropic = GatewayPolicy(
        provider="anthropic",
        model="claude-x",
        run_id="r",
        allowed_models=frozenset({"claude-y"}),
    )
    assert anthropic.base_url == "https://api.anthropic.com"
    assert anthropic.family == "anthropic"
    assert anthropic.allowed_models == {"claude-x", "claude-y"}
    local = GatewayPolicy(
        provider="openai-compatible", model="llama", run_id="r", base_url="http://h:8000/v1/"
    )
    assert local.base_url == "http://h:8000/v1"
    assert local.api_key is None
    with pytest.raises(InvalidModelPolicy, match="needs a base URL"):
        GatewayPolicy(provider="openai-compatible", model="llama", run_id="r")
    with pytest.raises(InvalidModelPolicy, match="http"):
        GatewayPolicy(provider="openai", model="m", run_id="r", base_url="file:///etc/passwd")
    with pytest.raises(InvalidModelPolicy, match="unknown model provider"):
        GatewayPolicy(provider="gemini", model="m", run_id="r")  # type: ignore[arg-type]
    with pytest.raises(InvalidModelPolicy, match="model name"):
        GatewayPolicy(provider="openai", model="", run_id="r")


def test_model_resolution_and_override() -> None:
    policy = GatewayPolicy(
        provider="openai", model="a", run_id="r", allowed_models=frozenset({"b"})
    )
    assert policy.resolve_model(None) == "a"
    assert policy.resolve_model("") == "a"
    assert policy.resolve_model("b") == "b"
    with pytest.raises(ModelNotAllowed, match="'c' is not allowed"):
        policy.resolve_model("c")
    with pytest.raises(InvalidModelRequest):
        policy.resolve_model(["a"])
    override = policy.with_model("b")
    assert (override.model, override.allowed_models) == ("b", frozenset({"a", "b"}))
    assert ModelNotAllowed.status == 403


def test_policy_from_the_agents_model_policy() -> None:
    policy = GatewayPolicy.from_model_policy(
        ModelPolicy(provider="anthropic", model="claude-x", allowedModels=["claude-z"]),
        run_id="run_1",
        api_key="k",
        allowed_models=["claude-y"],
    )
    assert (policy.provider, policy.model, policy.run_id) == ("anthropic", "claude-x", "run_1")
    assert policy.allowed_models == {"claude-x", "claude-y", "claude-z"}
    assert policy.base_url == "https://api.anthropic.com"
    local = ModelPolicy(provider="openai-compatible", model="llama", baseUrl="http://a:1/v1")
    assert GatewayPolicy.from_model_policy(local, run_id="r", api_key=None).base_url == (
        "http://a:1/v1"
    )
    operator = GatewayPolicy.from_model_policy(
        local, run_id="r", api_key=None, base_url="http://b:2/v1"
    )
    assert operator.base_url == "http://b:2/v1"
    with pytest.raises(InvalidModelPolicy, match="provider and a model"):
        GatewayPolicy.from_model_policy(ModelPolicy(model="x"), run_id="r", api_key=None)
    # Defence in depth: a stored policy that skipped validation is still refused.
    unchecked = ModelPolicy.model_construct(provider="bedrock", model="x")
    with pytest.raises(InvalidModelPolicy, match="unknown model provider"):
        GatewayPolicy.from_model_policy(unchecked, run_id="r", api_key=None)


def test_scrub_removes_the_key_and_its_fragments() -> None:
    key = "sk-proj-ABCDEFGHIJKLMNOP"
    assert scrub(f"bad key {key}!", key) == "bad key [redacted]!"
    masked = scrub(f"key sk-pro****{key[-10:]}", key)
    assert key[-10:] not in masked
    assert "[redacted]" in masked
    assert scrub("nothing here", key) == "nothing here"
    assert scrub("nothing here", None) == "nothing here"
    assert len(scrub("x" * 5000, key)) == 500


def test_call_records_have_the_documented_shape() -> None:
    ledger = Ledger()
    call = CallRecord(protocol="messages", model="claude-x", stream=True)
    call.usage = Usage(10, 5)
    call.finish(200)
    ledger.record(call)
    failed = CallRecord(protocol="messages", model="claude-x")
    failed.finish("error", "cannot reach the anthropic upstream (ConnectError)")
    ledger.record(failed)
    first, second = ledger.calls
    assert set(first) == {
        "model",
        "protocol",
        "status",
        "inputTokens",
        "outputTokens",
        "latencyMs",
        "startedAt",
        "completedAt",
        "stream",
        "index",
    }
    assert (first["index"], second["index"]) == (0, 1)  # numbered as recorded, when not begun
    assert (first["status"], first["inputTokens"], first["outputTokens"]) == (200, 10, 5)
    assert first["completedAt"] >= first["startedAt"]
    assert second["status"] == "error"
    assert second["error"].startswith("cannot reach")
    assert ledger.usage == Usage(10, 5)


def test_ledger_numbers_calls_as_they_begin_and_reports_changes() -> None:
    changes: list[int] = []
    ledger = Ledger()
    ledger.on_change = lambda: changes.append(len(ledger.in_flight()))
    slow, fast = CallRecord(protocol="chat"), CallRecord(protocol="chat")
    ledger.begin(slow)
    ledger.begin(fast)
    assert [c["index"] for c in ledger.in_flight()] == [0, 1]
    assert ledger.in_flight()[0]["completedAt"] is None
    fast.finish(200)
    ledger.record(fast)
    slow.finish(500, "upstream error")
    ledger.record(slow)
    assert [c["index"] for c in ledger.calls] == [1, 0]  # completion order, begin numbers
    assert ledger.in_flight() == []
    assert changes == [1, 2, 1, 0]


def test_a_credential_that_cannot_be_a_header_is_refused_clearly() -> None:
    for bad in ("sk-…", "sk- spaced", "sk-\nnewline", ""):
        with pytest.raises(InvalidModelPolicy, match="cannot be sent in an HTTP header"):
            GatewayPolicy(provider="openai", model="m", run_id="r", api_key=bad)
    assert GatewayPolicy(provider="openai", model="m", run_id="r", api_key="sk-ok_1.2").api_key
