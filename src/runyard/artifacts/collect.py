"""Finding the files a run wrote under ``outputs/`` in its working directory.

The agent's home is agent-controlled, so the walk never follows a symlink:
each directory is opened relative to its parent's descriptor with
``O_NOFOLLOW``, files are opened the same way (and ``O_NONBLOCK``, so a planted
FIFO cannot stall the worker) and must be regular files. Homes persist
between runs, so the worker takes a :func:`snapshot` of ``outputs/`` before
the run starts and :func:`collect` keeps only files that are new or changed
since. Limits (files, total bytes, depth) bound what one run can make the
worker copy; what is skipped is reported as a warning, never silently.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from runyard.artifacts.blobs import ArtifactBlobs, TooLarge
from runyard.domain.canvas import Artifact, block_id

OUTPUTS = "outputs"
MAX_DEPTH = 8
MAX_NAME = 500
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

Seen = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_bytes: int


@dataclass
class Collected:
    artifacts: list[Artifact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@contextmanager
def _open_outputs(home: Path, cwd: str) -> Iterator[int | None]:
    """A descriptor of ``home/cwd/outputs`` reached without following symlinks, or None."""
    parts = [p for p in cwd.split("/") if p not in ("", ".")] + [OUTPUTS]
    try:
        fd = os.open(home, _DIR)
    except OSError:
        yield None
        return
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except OSError:
                yield None
                return
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _walk(
    fd: int, prefix: str, depth: int, skipped: list[str] | None = None
) -> Iterator[tuple[str, int, str]]:
    """``(relative name, parent fd, entry name)`` of every regular-looking file;
    directories it cannot enter are named in ``skipped``."""
    with os.scandir(fd) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    for entry in listed:
        name = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            if depth >= MAX_DEPTH:
                if skipped is not None:
                    skipped.append(f"{name}/ was not searched: deeper than {MAX_DEPTH} levels")
                continue
            try:
                child = os.open(entry.name, _DIR, dir_fd=fd)
            except OSError:
                if skipped is not None:
                    skipped.append(f"{name}/ could not be opened")
                continue
            try:
                yield from _walk(child, name + "/", depth + 1, skipped)
            finally:
                os.close(child)
        elif entry.is_file(follow_symlinks=False):
            yield name, fd, entry.name


def snapshot(home: Path, cwd: str) -> dict[str, Seen]:
    """What ``outputs/`` holds before a run, to tell the run's files from older ones."""
    seen: dict[str, Seen] = {}
    with _open_outputs(home, cwd) as fd:
        if fd is None:
            return seen
        for name, parent, entry in _walk(fd, "", 0):
            with suppress(OSError):
                st = os.stat(entry, dir_fd=parent, follow_symlinks=False)
                seen[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return seen


def _kind(name: str) -> tuple[str, str]:
    suffix = Path(name).suffix.lower().lstrip(".")
    media = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
    return (suffix[:20] or "file"), media


def collect(
    home: Path,
    cwd: str,
    before: dict[str, Seen],
    blobs: ArtifactBlobs,
    *,
    run_id: str,
    workspace_id: str,
    limits: Limits,
    now: int,
) -> Collected:
    """Copy the files the run created or changed under ``outputs/`` into ``blobs``."""
    found = Collected()
    if limits.max_files == 0:
        return found
    budget = limits.max_bytes
    with _open_outputs(home, cwd) as fd:
        if fd is None:
            return found
        skipped: list[str] = []
        for name, parent, entry in _walk(fd, "", 0, skipped):
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                found.warnings.append("an output file with a name that is not UTF-8 was skipped")
                continue
            if len(name) > MAX_NAME:
                found.warnings.append(f"output {name[:80]!r}… was skipped: its name is too long")
                continue
            if len(found.artifacts) >= limits.max_files:
                found.warnings.append(
                    f"only the first {limits.max_files} output files were kept as artifacts"
                )
                break
            try:
                file_fd = os.open(entry, _FILE, dir_fd=parent)
            except OSError:
                found.warnings.append(f"output {name!r} could not be read and was skipped")
                continue
            try:
                st = os.fstat(file_fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                if before.get(name) == (st.st_size, st.st_mtime_ns, st.st_ino):
                    continue  # there before the run and unchanged
                os.set_blocking(file_fd, True)
                sha, size = blobs.put_fd(file_fd, budget)
            except TooLarge:
                found.warnings.append(
                    f"output {name!r} was skipped: the run's artifacts would exceed"
                    f" {limits.max_bytes} bytes"
                )
                continue
            except OSError:
                found.warnings.append(f"output {name!r} could not be read and was skipped")
                continue
            finally:
                os.close(file_fd)
            budget -= size
            kind, media = _kind(name)
            found.artifacts.append(
                Artifact(
                    id=block_id(run_id, f"artifact:{name}"),
                    run_id=run_id,
                    workspace_id=workspace_id,
                    name=name,
                    type=kind,
                    media_type=media,
                    size_bytes=size,
                    sha256=sha,
                    created_at=now,
                )
            )
        found.warnings += [f"outputs/{s}" for s in skipped]
    return found
