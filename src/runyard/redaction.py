"""Redaction of secret values from everything a run stores.

A run may print a secret it was given — plainly, base64-encoded (standard or
URL-safe, at any alignment inside a longer encoded string) or URL-encoded.
Every such form is replaced by ``[REDACTED:<name>]`` before output, error
messages, warnings or events are written. Values shorter than
``MIN_SECRET_LENGTH`` are not redacted (they would shred ordinary text); the
secrets API warns about them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 4
MIN_ENCODED_CORE = 6


def _base64_cores(raw: bytes) -> set[str]:
    """The parts of base64 text that depend only on ``raw``, at each alignment."""
    cores: set[str] = set()
    n = len(raw)
    for k in (0, 1, 2):
        first = -(-8 * k // 6)  # ceil: first char made only of secret bits
        last = (8 * (k + n)) // 6  # exclusive
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * k + raw).decode()
            core = text[first:last]
            if len(core) >= MIN_ENCODED_CORE:
                cores.add(core)
    return cores


def forms(value: str) -> set[str]:
    """Every form of ``value`` the redactor looks for."""
    if len(value) < MIN_SECRET_LENGTH:
        return set()
    found = {value, quote(value, safe=""), quote_plus(value)}
    found |= _base64_cores(value.encode())
    return {f for f in found if f}


class Redactor:
    """Replaces any known secret value, in any supported form, by its name."""

    def __init__(self, secrets: Iterable[tuple[str, str]]) -> None:
        replacements: dict[str, str] = {}
        for name, value in secrets:
            for form in forms(value):
                replacements.setdefault(form, f"[REDACTED:{name}]")
        self._replacements = replacements
        ordered = sorted(replacements, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str | None) -> str | None:
        if value is None or self._pattern is None:
            return value
        return self._pattern.sub(lambda m: self._replacements[m.group(0)], value)

    def texts(self, values: list[str] | None) -> list[str] | None:
        return None if values is None else [self.text(v) or "" for v in values]

    def values(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` with every string value (one level deep, and in lists) redacted."""
        out: dict[str, Any] = {}
        for key, value in document.items():
            if isinstance(value, str):
                out[key] = self.text(value)
            elif isinstance(value, list):
                out[key] = [self.text(v) if isinstance(v, str) else v for v in value]
            else:
                out[key] = value
        return out
