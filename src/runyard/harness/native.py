"""The ``native`` harness: runyard's own small tool-using agent loop over the model gateway.

It exists so that an agent needs no third-party CLI to do real work: the loop
is :mod:`runyard.harness.native_agent`, a standard-library-only program that
this adapter ships into the run's private directory and runs inside the
sandbox with the system ``/usr/bin/python3`` (the prompt on stdin). The
program prints exactly one JSON result document, which :meth:`interpret` maps
to a :class:`RunOutcome`. The worker adds the gateway's
``RUNYARD_MODEL_BASE_URL`` and ``RUNYARD_MODEL`` to the environment.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from typing import Any

from runyard.domain.entities import RunError, RunOutcome
from runyard.errors import HarnessUnavailable
from runyard.harness.base import (
    Harness,
    HarnessContext,
    Invocation,
    exit_outcome,
)
from runyard.sandbox.base import ProcessResult

PYTHON = "/usr/bin/python3"
PROGRAM = "native_agent.py"
DEFAULT_MAX_STEPS = 20


@functools.cache
def program_source() -> bytes:
    """The agent program's bytes, as packaged next to this module."""
    return resources.files("runyard.harness").joinpath(PROGRAM).read_bytes()


def parse_result(stdout: bytes) -> dict[str, Any] | None:
    """The program's result document, or None when stdout is not one JSON object."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("stopReason"), str):
        return None
    return document


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class NativeHarness(Harness):
    name = "native"
    needs_model = True

    def __init__(self, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.max_steps = max_steps

    def check(self) -> None:
        if not os.access(PYTHON, os.X_OK):
            raise HarnessUnavailable(f"{PYTHON} is not installed on this host")

    def invocation(self, ctx: HarnessContext) -> Invocation:
        env = {"RUNYARD_MAX_STEPS": str(self.max_steps)}
        if ctx.run.session_id:
            env["RUNYARD_SESSION_ID"] = ctx.run.session_id
        return Invocation(
            # -I: no user site or PYTHON* variables, so code planted in the
            # agent's home cannot run before the loop does.
            argv=[PYTHON, "-I", f"{ctx.paths.run_dir}/{PROGRAM}"],
            stdin=ctx.run.input.encode(),
            env=env,
            files={PROGRAM: program_source()},
        )

    def interpret(self, ctx: HarnessContext, result: ProcessResult) -> RunOutcome:
        stopped = exit_outcome(self.name, result, ctx.run.timeout_seconds)
        if stopped is not None:
            return stopped
        document = parse_result(result.stdout)
        if document is None:
            truncated = " (its output was truncated)" if result.stdout_truncated else ""
            message = (
                f"the native agent exited with status {result.exit_code} "
                f"without a result document{truncated}"
            )
            return self._failed("harness_failed", message)
        text = _str_or_none(document.get("text")) or ""
        count = document.get("toolCallCount")
        raw_warnings = document.get("warnings")
        warnings = (
            [w for w in raw_warnings if isinstance(w, str)]
            if isinstance(raw_warnings, list)
            else []
        )
        common: dict[str, Any] = {
            "warnings": warnings or None,
            "tool_usage": {
                "source": "harness_result",
                "toolCallCount": count if isinstance(count, int) else 0,
            },
            "session_id": _str_or_none(document.get("sessionId")),
            "tool_calls": _tool_calls(document.get("toolCalls")),
            "harness_resolved": self.name,
        }
        reason = document["stopReason"]
        detail = _str_or_none(document.get("error"))
        if reason == "completed":
            return RunOutcome(status="completed", output=text, **common)
        if reason == "step_limit":
            return RunOutcome(
                status="partial" if text.strip() else "failed",
                output=text or None,
                error=RunError("step_limit", detail or "the step limit was reached", False),
                **common,
            )
        code = reason if reason in ("model_error", "invalid_input") else "harness_failed"
        message = detail or f"the native agent stopped with {reason!r}"
        return self._failed(code, message, output=text or None, **common)

    def _failed(self, code: str, message: str, **fields: Any) -> RunOutcome:
        fields.setdefault("harness_resolved", self.name)
        return RunOutcome(
            status="failed", error=RunError(code=code, message=message, retryable=False), **fields
        )


def _tool_calls(raw: object) -> list[dict[str, Any]] | None:
    """The result document's tool-call trace, keeping only well-formed entries."""
    if not isinstance(raw, list):
        return None
    kept = []
    for entry in raw[:1000]:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            kept.append(
                {
                    "name": entry["name"],
                    "arguments": _str_or_none(entry.get("arguments")),
                    "startedAt": _int_or_none(entry.get("startedAt")),
                    "completedAt": _int_or_none(entry.get("completedAt")),
                    "ok": entry.get("ok") is not False,
                    "output": _str_or_none(entry.get("output")),
                }
            )
    return kept or None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
