"""A small Server-Sent Events reader for the run event stream.

:func:`parse_sse` turns the text lines of an ``text/event-stream`` body into
``(id, event, data)`` messages; comment lines (heartbeats) are skipped. Only
what runyard sends is supported: one ``data`` line per message, joined with
newlines if there are several.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str
    data: str


def parse_sse(lines: Iterable[str]) -> Iterator[SseMessage]:
    """Messages of an SSE stream, given its lines without line endings."""
    ident: str | None = None
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SseMessage(ident, event, "\n".join(data))
            ident, event, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            ident = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)
