"""Pieces of a run's outcome the executor assembles: failures, evidence, redaction.

Kept apart from :mod:`runyard.worker.executor` so that the executor reads as
the sequence of a run's steps.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from runyard.domain.entities import RunError, RunOutcome
from runyard.domain.policies import RuntimePolicy
from runyard.domain.states import RunStatus
from runyard.redaction import Redactor

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}


def make_private_dir(path: Path, owner: int | None) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if owner is not None:
        os.chown(path, owner, owner)


def write_private_files(run_dir: Path, files: dict[str, bytes], owner: int | None) -> None:
    """Write a harness's private files (its program, config) into the run directory."""
    for name, data in files.items():
        path = run_dir / name
        path.write_bytes(data)
        os.chmod(path, 0o600)
        if owner is not None:
            os.chown(path, owner, owner)


def policy_evidence(policy: RuntimePolicy) -> dict[str, object]:
    """The runtime policy a run was executed under, as recorded in its evidence."""
    limits = policy.resource_limits
    return {
        "networkMode": policy.network_policy.mode.value,
        "allowList": policy.network_policy.allow_list,
        "memoryMiB": limits.memory_mib,
        "cpus": limits.cpus,
        "pids": limits.pids,
        "diskGiB": limits.disk_gib,
        "persistent": policy.storage_policy.persistent,
    }


def redacted(outcome: RunOutcome, redactor: Redactor) -> RunOutcome:
    """The outcome with every secret value the run printed replaced by its name."""
    if not redactor:
        return outcome
    return replace(
        outcome,
        output=redactor.text(outcome.output),
        error=replace(outcome.error, message=redactor.text(outcome.error.message)),
        warnings=redactor.texts(outcome.warnings),
        tool_calls=[redactor.values(c) for c in outcome.tool_calls or []] or None,
    )


def failure(code: str, message: str, retryable: bool = False) -> RunOutcome:
    return RunOutcome(
        status=RunStatus.FAILED.value,
        error=RunError(code=code, message=message, retryable=retryable),
    )
