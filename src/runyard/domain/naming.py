"""Names a client may choose: agent slugs, workspace slugs, runtime paths.

A slug is derived from a display name; a runtime path (``workspace``,
``cwd``) must be a safe relative path that cannot leave the agent's home.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_PATH_LEN = 1024
MAX_SEGMENT_BYTES = 255  # NAME_MAX: a longer name fails in the file system, not here


def slugify(name: str) -> str:
    """``"Support Agent v2"`` -> ``"support-agent-v2"``; empty if nothing usable remains."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return text[:63].strip("-")


def is_slug(value: str) -> bool:
    return bool(SLUG_RE.match(value))


def is_encodable(value: str) -> bool:
    """False for strings that cannot be stored or used as a path (lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_relative_path(value: str, field: str) -> str:
    """Validate a client-supplied relative path; returns it normalised.

    Rejected: empty, absolute, ``..`` segments, NUL or control characters,
    lone surrogates (JSON allows ``"\\ud800"``; no file system does),
    backslashes, over-long values and segments longer than a file name may
    be. ``.`` segments and duplicate slashes are folded away. Symlinks are
    resolved later, against the real home.
    """
    if not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > MAX_PATH_LEN:
        raise ValueError(f"{field} is longer than {MAX_PATH_LEN} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{field} must not contain NUL or control characters")
    if not is_encodable(value):
        raise ValueError(f"{field} must be valid Unicode (no lone surrogates)")
    if "\\" in value:
        raise ValueError(f"{field} must use '/' as separator")
    if value.startswith("/") or value.startswith("~"):
        raise ValueError(f"{field} must be a relative path")
    parts = [p for p in PurePosixPath(value).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"{field} must not contain '..'")
    if any(len(p.encode()) > MAX_SEGMENT_BYTES for p in parts):
        raise ValueError(f"{field} has a path segment longer than {MAX_SEGMENT_BYTES} bytes")
    return "/".join(parts) or "."
