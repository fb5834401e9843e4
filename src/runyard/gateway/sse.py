"""An incremental server-sent-events decoder, for metering streams while relaying them.

The gateway forwards a provider's stream byte for byte; this decoder reads a
copy of the same bytes, in whatever pieces the network delivers, and yields
complete events so usage can be picked out of them. Lines end with ``\\n``
or ``\\r\\n`` (the providers' form; a bare ``\\r`` ending is not recognised).
An event larger than ``max_event`` stops decoding for the rest of the
stream; the relay itself is never affected.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EVENT = 8 * 1024 * 1024


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str


class SseDecoder:
    def __init__(self, max_event: int = MAX_EVENT) -> None:
        self._max = max_event
        self._buffer = b""
        self._event = ""
        self._data: list[bytes] = []
        self._size = 0
        self.overflowed = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self.overflowed:
            return []
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        events: list[SseEvent] = []
        for raw in lines:
            line = raw.removesuffix(b"\r")
            if not line:
                if self._data:
                    data = b"\n".join(self._data).decode("utf-8", "replace")
                    events.append(SseEvent(self._event or "message", data))
                self._event, self._data, self._size = "", [], 0
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"data":
                self._data.append(value)
                self._size += len(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        if self._size + len(self._buffer) > self._max:
            self.overflowed = True
            self._buffer, self._data = b"", []
        return events
