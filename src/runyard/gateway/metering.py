"""Token usage read from provider responses, and the record of each model call.

This is the one place that knows every provider's usage field names. Usage
comes only from what the provider reported (``source:
"provider_response"``); nothing is estimated. Totals follow the reference:
``totalTokens = inputTokens + outputTokens``, with each provider's own
meaning of input (OpenAI's prompt tokens include cached ones; Anthropic's
``input_tokens`` exclude cache reads and writes, reported separately).

:class:`Ledger` is what a session accumulates: the summed usage and one
support-safe record per model call (no prompt, no output, no secrets).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

MAX_ERROR = 300


@dataclass
class Usage:
    """Token counts of one response or of a whole session; ``None`` = not reported."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None

    @property
    def reported(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def update_latest(self, other: Usage) -> None:
        """Take every field ``other`` reports (stream usage events are cumulative)."""
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, value)

    def add(self, other: Usage) -> None:
        """Sum ``other`` into this usage; a field stays ``None`` until someone reports it."""
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, (getattr(self, f.name) or 0) + value)

    def to_wire(self) -> dict[str, Any]:
        """The reference's ``tokenUsage`` object."""
        inputs = self.input_tokens or 0
        outputs = self.output_tokens or 0
        return {
            "source": "provider_response",
            "inputTokens": inputs,
            "outputTokens": outputs,
            "reasoningTokens": self.reasoning_tokens,
            "cacheReadTokens": self.cache_read_tokens,
            "cacheWriteTokens": self.cache_write_tokens,
            "totalTokens": inputs + outputs,
        }


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _sub(block: Mapping[str, Any], name: str, key: str) -> int | None:
    inner = block.get(name)
    return _count(inner.get(key)) if isinstance(inner, Mapping) else None


def openai_chat_usage(block: object) -> Usage | None:
    """Chat Completions ``usage``: prompt/completion tokens and their details."""
    if not isinstance(block, Mapping):
        return None
    usage = Usage(
        input_tokens=_count(block.get("prompt_tokens")),
        output_tokens=_count(block.get("completion_tokens")),
        reasoning_tokens=_sub(block, "completion_tokens_details", "reasoning_tokens"),
        cache_read_tokens=_sub(block, "prompt_tokens_details", "cached_tokens"),
    )
    return usage if usage.reported else None


def responses_usage(block: object) -> Usage | None:
    """Responses ``usage``: input/output tokens and their details."""
    if not isinstance(block, Mapping):
        return None
    usage = Usage(
        input_tokens=_count(block.get("input_tokens")),
        output_tokens=_count(block.get("output_tokens")),
        reasoning_tokens=_sub(block, "output_tokens_details", "reasoning_tokens"),
        cache_read_tokens=_sub(block, "input_tokens_details", "cached_tokens"),
    )
    return usage if usage.reported else None


def anthropic_usage(block: object) -> Usage | None:
    """Anthropic Messages ``usage``: input/output and cache read/creation tokens."""
    if not isinstance(block, Mapping):
        return None
    usage = Usage(
        input_tokens=_count(block.get("input_tokens")),
        output_tokens=_count(block.get("output_tokens")),
        cache_read_tokens=_count(block.get("cache_read_input_tokens")),
        cache_write_tokens=_count(block.get("cache_creation_input_tokens")),
    )
    return usage if usage.reported else None


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class CallRecord:
    """One model call as the ledger keeps it; see :meth:`to_wire` for the shape."""

    protocol: str
    model: str | None = None
    stream: bool = False
    status: int | str = "error"
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    started_at: int = field(default_factory=now_ms)
    completed_at: int | None = None
    index: int = -1  # the call's number in its session, given by Ledger.begin
    _t0: float = field(default_factory=time.monotonic, repr=False)
    _latency_ms: int = field(default=0, repr=False)

    def finish(self, status: int | str, error: str | None = None) -> None:
        self.status = status
        if error is not None and self.error is None:
            self.error = error[:MAX_ERROR]
        self.completed_at = now_ms()
        self._latency_ms = int((time.monotonic() - self._t0) * 1000)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "protocol": self.protocol,
            "status": self.status,
            "inputTokens": self.usage.input_tokens,
            "outputTokens": self.usage.output_tokens,
            "latencyMs": self._latency_ms,
            "startedAt": self.started_at,
            "completedAt": self.completed_at,
            "stream": self.stream,
            "index": self.index,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class Ledger:
    """A session's summed usage and its model calls, in completion order.

    Calls in flight are kept too (numbered as they begin), and ``on_change``
    is called whenever a call begins or ends, so the worker can show a run's
    model calls on its canvas while the run goes on.
    """

    usage: Usage = field(default_factory=Usage)
    calls: list[dict[str, Any]] = field(default_factory=list)
    on_change: Callable[[], None] | None = None
    _in_flight: dict[int, CallRecord] = field(default_factory=dict)
    _begun: int = 0

    def begin(self, call: CallRecord) -> None:
        call.index = self._begun
        self._begun += 1
        self._in_flight[call.index] = call
        self._changed()

    def record(self, call: CallRecord) -> None:
        if call.completed_at is None:
            call.finish(call.status)
        if call.index < 0:
            call.index = self._begun
            self._begun += 1
        self._in_flight.pop(call.index, None)
        self.usage.add(call.usage)
        self.calls.append(call.to_wire())
        self._changed()

    def in_flight(self) -> list[dict[str, Any]]:
        return [c.to_wire() for c in self._in_flight.values()]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
