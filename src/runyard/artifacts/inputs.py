"""Placing a run's uploaded input files in its working directory before it starts.

Surfaces that accept uploads (Spine's ``files``) store them in the artifact
store when the run is submitted and list them in the run's request as
``inputFiles`` (``name``, ``sha256``, ``sizeBytes``). The worker copies each
into ``inputs/<name>`` of the working directory, as the agent's uid, walking
the agent-controlled home without following symlinks.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from runyard.artifacts.blobs import CHUNK, ArtifactBlobs
from runyard.environments.homes import open_dir
from runyard.errors import PathEscape

INPUTS = "inputs"
_PART = re.compile(r"[^/\x00]{1,255}")


def safe_name(name: str) -> bool:
    """A relative path of plain components: no ``..``, no empty parts, no NUL."""
    parts = name.split("/")
    return (
        0 < len(name) <= 500
        and all(_PART.fullmatch(p) and p not in (".", "..") for p in parts)
        and len(parts) <= 8
    )


def place_inputs(
    home: Path, cwd: str, files: Sequence[Any], blobs: ArtifactBlobs, owner: int | None
) -> int:
    """Copy the listed blobs into ``home/cwd/inputs``; returns how many were placed.

    A malformed entry or a missing blob fails the run (:class:`PathEscape`
    for names and unwritable paths, :class:`FileNotFoundError` for blobs): a
    run never starts without the inputs it was accepted with. A missing blob
    is found before anything in the home is touched.
    """
    base = [p for p in cwd.split("/") if p not in ("", ".")] + [INPUTS]
    placed = 0
    for entry in files:
        name = entry.get("name") if isinstance(entry, dict) else None
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not safe_name(name) or not isinstance(sha, str):
            raise PathEscape("an input file has an unusable name")
        try:
            source = open(blobs.path(sha), "rb")  # noqa: SIM115 - closed below
        except ValueError as exc:
            raise FileNotFoundError(f"input file {name!r} has no stored content") from exc
        with source:
            *dirs, leaf = name.split("/")
            fd = open_dir(home, base + dirs, owner, label=f"input file {name!r}")
            try:
                _write_replacing(fd, leaf, source, owner, name)
            finally:
                os.close(fd)
        placed += 1
    return placed


def _write_replacing(
    dir_fd: int, leaf: str, source: BinaryIO, owner: int | None, name: str
) -> None:
    """Write ``leaf`` in ``dir_fd`` through a fresh temporary file renamed over it.

    The rename replaces whatever the agent left at that name (a symlink, a
    FIFO, an old file) without opening it, so nothing is followed or blocked on.
    """
    tmp = f".{leaf[:200]}.runyard-{secrets.token_hex(6)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        out = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
    except OSError as exc:
        raise PathEscape(f"input file {name!r} cannot be written: {exc.strerror}") from exc
    try:
        with os.fdopen(out, "wb") as sink:
            if owner is not None:
                os.fchown(sink.fileno(), owner, owner)
            shutil.copyfileobj(source, sink, CHUNK)
        os.rename(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise PathEscape(f"input file {name!r} cannot be written: {exc.strerror}") from exc
