"""The fake provider's script: replies, tool calls, errors, and recorded requests.

Protocol-neutral values; :mod:`tests.fakes.wire` renders a :class:`Reply` in
each provider's wire format, :mod:`tests.fakes.upstream` serves them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One tool call; ``arguments`` as a dict, or a raw JSON string (OpenAI sends strings)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    def arguments_dict(self) -> dict[str, Any]:
        if isinstance(self.arguments, dict):
            return self.arguments
        try:
            parsed = json.loads(self.arguments)
        except ValueError:  # scripted broken JSON: Anthropic input is always an object
            return {"raw": self.arguments}
        return parsed if isinstance(parsed, dict) else {"value": parsed}


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``status >= 400`` makes it an error in the protocol's envelope."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 21
    output_tokens: int = 9
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    status: int = 200
    error_type: str | None = None
    error_message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    hold: bool = False
    cut: bool = False


def reply(
    text: str = "",
    *,
    tool_calls: Iterable[ToolCall] = (),
    input_tokens: int = 21,
    output_tokens: int = 9,
    reasoning_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    hold: bool = False,
    cut: bool = False,
) -> Reply:
    """A text reply (optionally with tool calls) and the usage the provider reports for it.

    ``hold=True`` stops a stream halfway (or delays a whole answer) until
    :meth:`FakeUpstream.release` is called, so a test can act meanwhile;
    ``cut=True`` breaks a stream's connection halfway, as a provider crash would.
    """
    return Reply(
        text=text,
        tool_calls=tuple(tool_calls),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        hold=hold,
        cut=cut,
    )


def tool_call(
    name: str,
    arguments: dict[str, Any] | str | None = None,
    *,
    id: str | None = None,
    text: str = "",
    input_tokens: int = 21,
    output_tokens: int = 9,
) -> Reply:
    """A reply whose content is one tool call (plus optional text before it)."""
    call = ToolCall(name, {} if arguments is None else arguments, id)
    return reply(text, tool_calls=[call], input_tokens=input_tokens, output_tokens=output_tokens)


def error(
    status: int, message: str, *, type: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """An HTTP error answer in the protocol's envelope (``type`` defaults by status)."""
    return Reply(
        status=status,
        error_type=type,
        error_message=message,
        headers=tuple((headers or {}).items()),
    )


@dataclass(frozen=True)
class RecordedRequest:
    protocol: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


Scripted = Reply | Callable[[RecordedRequest], Reply]
