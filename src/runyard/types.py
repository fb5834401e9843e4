"""Small shared vocabulary: identifiers, the clock and JSON aliases.

Identifiers are prefixed, time-sortable ULIDs (``agent_01j…``) so that they
say what they name and sort by creation. Times are integer milliseconds since
the epoch in storage (portable across SQLite and PostgreSQL) and RFC 3339
strings with milliseconds on the wire.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_ulid(now_ms: int | None = None) -> str:
    """A 26-character, lower-case Crockford ULID: 48 bits of time, 80 random."""
    ms = now_ms if now_ms is not None else now_millis()
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def now_millis() -> int:
    return time.time_ns() // 1_000_000


def iso_millis(ms: int | None) -> str | None:
    """Render stored milliseconds as ``2026-04-17T10:00:00.000Z`` (None stays None)."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(value: str) -> int:
    """Parse an RFC 3339 timestamp into milliseconds; raises ValueError if malformed."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp needs a timezone (for example 'Z')")
    return int(dt.timestamp() * 1000)
