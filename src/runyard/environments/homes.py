"""The safe resolution of a run's working directory inside the agent's home.

Where homes live is the substrate's business (:mod:`runyard.sandbox.volumes`);
this module only resolves ``workspace``/``cwd``. A run's working directory
is ``home/<workspace>/<cwd>``; both parts were validated as
safe relative paths at the API, and here the resolved directory is checked
to stay inside the home after following symlinks that the agent may have
planted.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from runyard.errors import PathEscape


def resolve_workdir(
    home: Path, workspace: str | None, cwd: str | None, owner: int | None = None
) -> str:
    """Create the run's working directory inside ``home``; returns it relative to ``home``.

    The home is agent-controlled and may hold symlinks, so the walk never
    follows one: each component is opened relative to its parent's file
    descriptor with ``O_NOFOLLOW``, and a component that is not a real
    directory fails the run. Directories it creates belong to ``owner`` (the
    agent's sandbox uid). Errors never name host paths: the message is stored
    in the run's support-safe history.
    """
    relative = "/".join(p for p in (workspace, cwd) if p and p != ".") or "."
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    fd = open_dir(home, parts, owner, label=f"working directory {relative!r}")
    os.close(fd)
    return "/".join(parts) or "."


_NOT_DIR = (errno.ELOOP, errno.ENOTDIR)


def open_dir(home: Path, parts: list[str], owner: int | None, *, label: str) -> int:
    """An open descriptor of ``home/parts…``, creating missing directories for
    ``owner``; never follows a symlink (see :func:`resolve_workdir`). The caller
    closes it. ``label`` names the path in errors, which never show host paths."""
    if any(p == ".." for p in parts):
        raise PathEscape(f"{label} must stay inside the agent's home")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(home, flags)
    except OSError as exc:
        raise PathEscape(f"the agent's home cannot be used: {exc.strerror}") from exc
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                created = True
            except FileExistsError:
                created = False
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                reason = (
                    "it is a symlink or not a directory"
                    if exc.errno in _NOT_DIR
                    else (exc.strerror or "unusable path")
                )
                raise PathEscape(f"{label} cannot be used: {reason}") from exc
            os.close(fd)
            fd = child
            if created and owner is not None:
                os.fchown(fd, owner, owner)
    except OSError as exc:
        os.close(fd)
        raise PathEscape(f"{label} cannot be used: {exc.strerror or 'unusable path'}") from exc
    except BaseException:
        os.close(fd)
        raise
    return fd
