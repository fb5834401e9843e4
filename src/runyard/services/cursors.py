"""Opaque page cursors, made and read in one place for every listing.

A cursor is ``"<tag>:<value>"`` in unpadded base64url. The tag names the
listing (so a cursor of one listing is refused by another), the value is
where the page ends (a run's ``seq``, an agent id, a sort key). Reading
accepts only what :func:`encode` made: anything else — foreign base64, another
tag, a value that does not match the listing's pattern, a number too long for
a 64-bit column — is a ``400`` naming the query field.
"""

from __future__ import annotations

import base64
import binascii
import re

from runyard.errors import BadRequest

SEQ = re.compile(r"[0-9]{1,18}")  # fits the store's 64-bit integer columns


def encode(tag: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{tag}:{value}".encode()).decode().rstrip("=")


def decode(token: str, tag: str, pattern: re.Pattern[str], field: str = "cursor") -> str:
    """The value of a cursor that :func:`encode` made with ``tag``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid {field}", {"field": field}) from exc
    found_tag, _, value = raw.partition(":")
    if found_tag != tag or not pattern.fullmatch(value):
        raise BadRequest(f"invalid {field}", {"field": field})
    return value


def encode_seq(tag: str, seq: int) -> str:
    return encode(tag, str(seq))


def decode_seq(token: str, tag: str, field: str = "cursor") -> int:
    """The ``seq`` a cursor points after."""
    return int(decode(token, tag, SEQ, field))
