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


def resolve_workdir(home: Path, workspace: str | None, cwd: str | None) -> str:
    """Create and return the run's working directory relative to ``home``."""
    relative = "/".join(p for p in (workspace, cwd) if p and p != ".") or "."
    real_home = home.resolve()
    target = (home / relative).resolve()
    if target != real_home and real_home not in target.parents:
        raise PathEscape(f"working directory {relative!r} resolves outside the agent's home")
    target.mkdir(parents=True, exist_ok=True)
    # mkdir may have followed a symlink planted between the check and here.
    if os.path.realpath(target) != str(target):
        raise PathEscape(f"working directory {relative!r} changed while it was being created")
    return os.path.relpath(target, real_home)
