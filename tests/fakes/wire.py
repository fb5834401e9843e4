"""The three providers' wire formats for a scripted :class:`~tests.fakes.script.Reply`.

OpenAI Chat Completions, OpenAI Responses and Anthropic Messages: whole
bodies, stream events (as ``(event name, data)`` pairs) and error envelopes,
with the field names and usage blocks the real providers send.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse

from tests.fakes.script import RecordedRequest, Reply

CREATED = 1_760_000_000

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _pieces(text: str, parts: int = 3) -> list[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    if not words:
        return []
    size = -(-len(words) // parts)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class Render:
    def error(self, status: int, kind: str, message: str) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": None, "code": None}},
            status_code=status,
        )

    def body(self, r: Reply, model: str, n: int) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, r: Reply, req: RecordedRequest, n: int) -> Iterable[tuple[str | None, object]]:
        raise NotImplementedError


class _Chat(Render):
    @staticmethod
    def usage(r: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": r.input_tokens,
            "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cache_read_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": r.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def calls(r: Reply, n: int) -> list[dict[str, Any]]:
        return [
            {
                "id": c.id or f"call_{n}_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json()},
            }
            for i, c in enumerate(r.tool_calls)
        ]

    def body(self, r: Reply, model: str, n: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": r.text or None, "refusal": None}
        if r.tool_calls:
            message["tool_calls"] = self.calls(r, n)
        return {
            "id": f"chatcmpl-fake{n}",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if r.tool_calls else "stop",
                }
            ],
            "usage": self.usage(r),
        }

    def stream(self, r: Reply, req: RecordedRequest, n: int) -> Iterable[tuple[str | None, object]]:
        options = req.body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        base = {
            "id": f"chatcmpl-fake{n}",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": req.model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            return {**out, "usage": None} if with_usage else out

        yield None, chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in _pieces(r.text):
            yield None, chunk({"content": piece})
        for i, call in enumerate(self.calls(r, n)):
            head = {"index": i, "id": call["id"], "type": "function"}
            fn = call["function"]
            yield (
                None,
                chunk(
                    {"tool_calls": [{**head, "function": {"name": fn["name"], "arguments": ""}}]}
                ),
            )
            args = fn["arguments"]
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                yield None, chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        yield None, chunk({}, "tool_calls" if r.tool_calls else "stop")
        if with_usage:
            yield None, {**base, "choices": [], "usage": self.usage(r)}
        yield None, "[DONE]"


class _Responses(Render):
    @staticmethod
    def usage(r: Reply) -> dict[str, Any]:
        return {
            "input_tokens": r.input_tokens,
            "input_tokens_details": {"cached_tokens": r.cache_read_tokens},
            "output_tokens": r.output_tokens,
            "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
            "total_tokens": r.input_tokens + r.output_tokens,
        }

    @staticmethod
    def items(r: Reply, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if r.text:
            out.append(
                {
                    "type": "message",
                    "id": f"msg_fake{n}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": r.text, "annotations": []}],
                }
            )
        for i, c in enumerate(r.tool_calls):
            out.append(
                {
                    "type": "function_call",
                    "id": f"fc_fake{n}_{i}",
                    "call_id": c.id or f"call_{n}_{i}",
                    "name": c.name,
                    "arguments": c.arguments_json(),
                    "status": "completed",
                }
            )
        return out

    def response(self, r: Reply, model: str | None, n: int, done: bool) -> dict[str, Any]:
        return {
            "id": f"resp_fake{n}",
            "object": "response",
            "created_at": CREATED,
            "status": "completed" if done else "in_progress",
            "model": model,
            "output": self.items(r, n) if done else [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "usage": self.usage(r) if done else None,
        }

    def body(self, r: Reply, model: str, n: int) -> dict[str, Any]:
        return self.response(r, model, n, done=True)

    def stream(self, r: Reply, req: RecordedRequest, n: int) -> Iterable[tuple[str | None, object]]:
        seq = itertools.count()

        def event(kind: str, **data: Any) -> tuple[str, object]:
            return kind, {"type": kind, "sequence_number": next(seq), **data}

        yield event("response.created", response=self.response(r, req.model, n, done=False))
        yield event("response.in_progress", response=self.response(r, req.model, n, done=False))
        for index, item in enumerate(self.items(r, n)):
            if item["type"] == "message":
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                part = {"type": "output_text", "text": "", "annotations": []}
                common = {"item_id": item["id"], "output_index": index, "content_index": 0}
                yield event("response.content_part.added", **common, part=part)
                for piece in _pieces(r.text):
                    yield event("response.output_text.delta", **common, delta=piece)
                yield event("response.output_text.done", **common, text=r.text)
                yield event("response.content_part.done", **common, part={**part, "text": r.text})
            else:
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                common = {"item_id": item["id"], "output_index": index}
                yield event(
                    "response.function_call_arguments.delta", **common, delta=item["arguments"]
                )
                yield event(
                    "response.function_call_arguments.done", **common, arguments=item["arguments"]
                )
            yield event("response.output_item.done", output_index=index, item=item)
        yield event("response.completed", response=self.response(r, req.model, n, done=True))


class _Messages(Render):
    def error(self, status: int, kind: str, message: str) -> JSONResponse:
        return JSONResponse(
            {"type": "error", "error": {"type": kind, "message": message}}, status_code=status
        )

    @staticmethod
    def usage(r: Reply, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": r.input_tokens,
            "cache_creation_input_tokens": r.cache_write_tokens,
            "cache_read_input_tokens": r.cache_read_tokens,
            "output_tokens": r.output_tokens if output_tokens is None else output_tokens,
        }

    @staticmethod
    def content(r: Reply, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"type": "text", "text": r.text}] if r.text else []
        for i, c in enumerate(r.tool_calls):
            out.append(
                {
                    "type": "tool_use",
                    "id": c.id or f"toolu_fake{n}_{i}",
                    "name": c.name,
                    "input": c.arguments_dict(),
                }
            )
        return out

    def message(self, r: Reply, model: str | None, n: int, done: bool) -> dict[str, Any]:
        return {
            "id": f"msg_fake{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": self.content(r, n) if done else [],
            "stop_reason": ("tool_use" if r.tool_calls else "end_turn") if done else None,
            "stop_sequence": None,
            "usage": self.usage(r) if done else self.usage(r, output_tokens=1),
        }

    def body(self, r: Reply, model: str, n: int) -> dict[str, Any]:
        return self.message(r, model, n, done=True)

    def stream(self, r: Reply, req: RecordedRequest, n: int) -> Iterable[tuple[str | None, object]]:
        def event(kind: str, **data: Any) -> tuple[str, object]:
            return kind, {"type": kind, **data}

        yield event("message_start", message=self.message(r, req.model, n, done=False))
        for index, block in enumerate(self.content(r, n)):
            if block["type"] == "text":
                yield event("content_block_start", index=index, content_block={**block, "text": ""})
                yield event("ping")
                for piece in _pieces(r.text):
                    yield event(
                        "content_block_delta",
                        index=index,
                        delta={"type": "text_delta", "text": piece},
                    )
            else:
                yield event(
                    "content_block_start", index=index, content_block={**block, "input": {}}
                )
                args = json.dumps(block["input"])
                for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                    yield event(
                        "content_block_delta",
                        index=index,
                        delta={"type": "input_json_delta", "partial_json": piece},
                    )
            yield event("content_block_stop", index=index)
        yield event(
            "message_delta",
            delta={
                "stop_reason": "tool_use" if r.tool_calls else "end_turn",
                "stop_sequence": None,
            },
            usage={"output_tokens": r.output_tokens},
        )
        yield event("message_stop")


RENDERERS: dict[str, Render] = {
    "chat_completions": _Chat(),
    "responses": _Responses(),
    "messages": _Messages(),
}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error")
