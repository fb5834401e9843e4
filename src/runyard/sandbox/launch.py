"""The launcher that puts a run in its cgroup and, as root, drops privileges.

A short ``/bin/sh`` script runs first: it writes its own pid into the run's
cgroup(s), so everything the run ever forks is accounted and killable, then
(when runyard is root) execs ``setpriv`` to become the agent's unprivileged
uid with no capabilities and ``no_new_privs``, which execs bwrap. A
root-started bwrap would keep root's file access; this one never has it.
Values reach the script through environment variables, never its text, and
bwrap starts with an environment of nothing but ``PATH``: inside the sandbox
bwrap is pid 1, and its ``/proc/1/environ`` must not tell the run host paths
or its host uid.
"""

from __future__ import annotations

from pathlib import Path

_SCRIPT = r"""
set -eu
for f in $RUNYARD_CGROUP_PROCS; do echo $$ > "$f"; done
if [ -n "${RUNYARD_UID:-}" ]; then
  exec env -i PATH="$PATH" setpriv --reuid="$RUNYARD_UID" --regid="$RUNYARD_UID" \
    --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"
fi
exec env -i PATH="$PATH" "$@"
"""


def launcher(
    command: list[str], *, cgroup_procs: list[Path], uid: int | None
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that launch ``command`` as described above."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "RUNYARD_CGROUP_PROCS": " ".join(str(p) for p in cgroup_procs),
    }
    if uid is not None:
        env["RUNYARD_UID"] = str(uid)
    return ["/bin/sh", "-c", _SCRIPT, "runyard-launch", *command], env
