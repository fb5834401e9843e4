"""The safe resolution of a run's working directory inside the agent's home.

Where homes live is the substrate's business (:mod:`runyard.sandbox.volumes`);
this module only resolves ``workspace``/``cwd``. A run's working directory
is ``home/<workspace>/<cwd>``; both parts were validated as
safe relative paths at the API, and here the resolved directory is checked
to stay inside the home after following symlinks that the agent may have
planted.
"""

from __future__ import annotations

import os
from pathlib import Path


class PathEscape(ValueError):
    """A working directory resolved outside the agent's home."""


def resolve_workdir(
    home: Path, workspace: str | None, cwd: str | None, owner: int | None = None
) -> str:
    """Create and return the run's working directory relative to ``home``.

    Directories it creates belong to ``owner`` (the agent's sandbox uid), so
    the run can write in them. Errors never name host paths: the message is
    stored in the run's support-safe history.
    """
    relative = "/".join(p for p in (workspace, cwd) if p and p != ".") or "."
    try:
        real_home = home.resolve()
        target = (home / relative).resolve()
        if target != real_home and real_home not in target.parents:
            raise PathEscape(f"working directory {relative!r} resolves outside the agent's home")
        current = real_home
        for part in target.relative_to(real_home).parts:
            current = current / part
            try:
                current.mkdir(mode=0o755)
            except FileExistsError:
                continue
            if owner is not None:
                os.chown(current, owner, owner)
        # A symlink may have been planted between the check and the mkdir.
        if os.path.realpath(target) != str(target) or not target.is_dir():
            raise PathEscape(f"working directory {relative!r} changed while it was being created")
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or "unusable path"
        raise PathEscape(f"working directory {relative!r} cannot be used: {reason}") from exc
    return os.path.relpath(target, real_home)
