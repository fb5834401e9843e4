"""The client protocols the gateway speaks, one class each.

OpenAI Chat Completions, OpenAI Responses and Anthropic Messages (plus
Anthropic's token counting, which is forwarded but not a model call). Each
protocol knows its paths, the upstream path it forwards to, which headers
carry the credential, where usage sits in a body and in a stream, and its
own error envelope.

The gateway forwards to an upstream of the *same* family only: Chat
Completions and Responses to ``openai`` / ``openai-compatible``, Messages to
``anthropic``. Translating between protocols (say, a Messages client on an
OpenAI upstream) is out of scope; such a request is refused with a clear 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from runyard.gateway.metering import Usage, anthropic_usage, openai_chat_usage, responses_usage
from runyard.gateway.policy import Family
from runyard.gateway.sse import SseEvent

ANTHROPIC_VERSION = "2023-06-01"
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BETA_RE = re.compile(r"^[A-Za-z0-9._,=\- ]{1,512}$")

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    return ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class ClientProtocol:
    """One client protocol; subclasses fill in the class variables and hooks."""

    name: ClassVar[str]
    family: ClassVar[Family]
    paths: ClassVar[tuple[str, ...]]
    upstream_path: ClassVar[str]
    metered: ClassVar[bool] = True
    query_params: ClassVar[tuple[str, ...]] = ()

    def prepare(self, body: dict[str, Any]) -> None:
        """Adjust the request body before it goes upstream (after the model was set)."""

    def upstream_headers(self, api_key: str | None, client: Mapping[str, str]) -> dict[str, str]:
        """Headers for the upstream: the injected credential and nothing the client chose
        except an allowlist of harmless protocol headers."""
        raise NotImplementedError

    def error_payload(self, status: int, error_type: str, message: str, reason: str) -> object:
        raise NotImplementedError

    def stream_error(self, message: str, reason: str) -> bytes:
        """An event that tells a streaming client the stream failed, in this protocol."""
        raise NotImplementedError

    def usage_from_body(self, body: object) -> Usage | None:
        return None

    def usage_from_event(self, event: SseEvent) -> Usage | None:
        return None

    def error_body(self, status: int, message: str, reason: str, error_type: str | None) -> bytes:
        return _json(
            self.error_payload(status, error_type or error_type_for(status), message, reason)
        )


def upstream_error_fields(body: object) -> tuple[str | None, str | None]:
    """``(message, type)`` of a provider's error body, whichever family's shape it has."""
    if not isinstance(body, Mapping):
        return None, None
    inner = body.get("error")
    if isinstance(inner, str):
        return inner, None
    block = inner if isinstance(inner, Mapping) else body
    message, kind = block.get("message"), block.get("type")
    return (
        message if isinstance(message, str) else None,
        kind if isinstance(kind, str) and kind != "error" else None,
    )


def _event_json(event: SseEvent) -> Mapping[str, Any] | None:
    if not event.data.startswith("{"):
        return None
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    return data if isinstance(data, Mapping) else None


class _OpenAIFamily(ClientProtocol):
    family = "openai"
    query_params = ("api-version",)

    def upstream_headers(self, api_key: str | None, client: Mapping[str, str]) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if client.get("accept", "").startswith("text/event-stream"):
            headers["accept"] = "text/event-stream"
        beta = client.get("openai-beta")
        if beta and _BETA_RE.match(beta):
            headers["openai-beta"] = beta
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    def error_payload(self, status: int, error_type: str, message: str, reason: str) -> object:
        return {"error": {"message": message, "type": error_type, "param": None, "code": reason}}


class ChatCompletions(_OpenAIFamily):
    name = "chat_completions"
    paths = ("/v1/chat/completions", "/chat/completions")
    upstream_path = "/chat/completions"

    def prepare(self, body: dict[str, Any]) -> None:
        # Without include_usage an OpenAI stream carries no usage at all.
        if body.get("stream") is True:
            options = body.get("stream_options")
            if options is None:
                body["stream_options"] = {"include_usage": True}
            elif isinstance(options, dict):
                options.setdefault("include_usage", True)

    def stream_error(self, message: str, reason: str) -> bytes:
        payload = self.error_payload(502, "api_error", message, reason)
        return b"data: " + _json(payload) + b"\n\n"

    def usage_from_body(self, body: object) -> Usage | None:
        return openai_chat_usage(body.get("usage")) if isinstance(body, Mapping) else None

    def usage_from_event(self, event: SseEvent) -> Usage | None:
        data = _event_json(event)
        return openai_chat_usage(data.get("usage")) if data is not None else None


class Responses(_OpenAIFamily):
    name = "responses"
    paths = ("/v1/responses", "/responses")
    upstream_path = "/responses"

    def stream_error(self, message: str, reason: str) -> bytes:
        payload = {"type": "error", "code": reason, "message": message, "param": None}
        return b"event: error\ndata: " + _json(payload) + b"\n\n"

    def usage_from_body(self, body: object) -> Usage | None:
        return responses_usage(body.get("usage")) if isinstance(body, Mapping) else None

    def usage_from_event(self, event: SseEvent) -> Usage | None:
        # response.completed / .incomplete / .failed carry the final response and its usage.
        data = _event_json(event)
        response = data.get("response") if data is not None else None
        return responses_usage(response.get("usage")) if isinstance(response, Mapping) else None


class _AnthropicFamily(ClientProtocol):
    family = "anthropic"
    query_params = ("beta",)

    def upstream_headers(self, api_key: str | None, client: Mapping[str, str]) -> dict[str, str]:
        version = client.get("anthropic-version", "")
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": version if _VERSION_RE.match(version) else ANTHROPIC_VERSION,
        }
        if client.get("accept", "").startswith("text/event-stream"):
            headers["accept"] = "text/event-stream"
        beta = client.get("anthropic-beta")
        if beta and _BETA_RE.match(beta):
            headers["anthropic-beta"] = beta
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def error_payload(self, status: int, error_type: str, message: str, reason: str) -> object:
        return {"type": "error", "error": {"type": error_type, "message": message}}

    def stream_error(self, message: str, reason: str) -> bytes:
        payload = self.error_payload(502, "api_error", message, reason)
        return b"event: error\ndata: " + _json(payload) + b"\n\n"


class Messages(_AnthropicFamily):
    name = "messages"
    paths = ("/v1/messages",)
    upstream_path = "/v1/messages"

    def usage_from_body(self, body: object) -> Usage | None:
        return anthropic_usage(body.get("usage")) if isinstance(body, Mapping) else None

    def usage_from_event(self, event: SseEvent) -> Usage | None:
        # message_start carries input (and cache) usage; message_delta the running output count.
        data = _event_json(event)
        if data is None:
            return None
        message = data.get("message")
        if data.get("type") == "message_start" and isinstance(message, Mapping):
            return anthropic_usage(message.get("usage"))
        return anthropic_usage(data.get("usage"))


class CountTokens(_AnthropicFamily):
    """Anthropic's token counting: policy-checked and forwarded, but not a model call."""

    name = "messages.count_tokens"
    paths = ("/v1/messages/count_tokens",)
    upstream_path = "/v1/messages/count_tokens"
    metered = False


CHAT_COMPLETIONS = ChatCompletions()
RESPONSES = Responses()
MESSAGES = Messages()
COUNT_TOKENS = CountTokens()
PROTOCOLS: tuple[ClientProtocol, ...] = (CHAT_COMPLETIONS, RESPONSES, MESSAGES, COUNT_TOKENS)
BY_PATH: dict[str, ClientProtocol] = {path: p for p in PROTOCOLS for path in p.paths}


def protocol_for_errors(path: str, headers: Mapping[str, str]) -> ClientProtocol:
    """The protocol whose error envelope suits a request the gateway could not route."""
    if path in BY_PATH:
        return BY_PATH[path]
    if "anthropic-version" in headers or "x-api-key" in headers or "messages" in path:
        return MESSAGES
    return CHAT_COMPLETIONS
