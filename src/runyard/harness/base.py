"""The harness interface and registry.

A harness turns a run into an :class:`Invocation` (argv as seen inside the
sandbox, stdin, extra environment, private files for the run directory) and
turns the supervised process's result back into a :class:`RunOutcome`. A
known harness name that this runyard has no adapter for is reported as the
run error ``harness_unavailable``, never silently replaced.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from runyard.domain.entities import Agent, Run, RunError, RunOutcome
from runyard.errors import HarnessUnavailable
from runyard.sandbox.base import ProcessResult, SandboxPaths


@dataclass(frozen=True)
class HarnessContext:
    run: Run
    agent: Agent
    paths: SandboxPaths


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    stdin: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


class Harness(ABC):
    name: str
    # Whether runs of this harness cannot work without the model gateway.
    needs_model: bool = False
    # Whether stdout is the answer as it is written (then it is streamed as
    # ``output_chunk`` events while the run goes on).
    streams_output: bool = False

    def check(self) -> None:
        """Raise :class:`HarnessUnavailable` when the harness cannot run on this host."""

    @abstractmethod
    def invocation(self, ctx: HarnessContext) -> Invocation: ...

    @abstractmethod
    def interpret(self, ctx: HarnessContext, result: ProcessResult) -> RunOutcome: ...


class HarnessRegistry:
    def __init__(self, harnesses: list[Harness]) -> None:
        self._by_name = {h.name: h for h in harnesses}

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Harness:
        harness = self._by_name.get(name)
        if harness is None:
            raise HarnessUnavailable(f"harness {name!r} is not installed on this runyard")
        harness.check()
        return harness


def decode_output(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def exit_outcome(harness: str, result: ProcessResult, timeout_seconds: int) -> RunOutcome | None:
    """The outcome of a run that did not exit on its own (timeout, cancel), else None."""
    output = decode_output(result.stdout) or None
    if result.timed_out:
        return RunOutcome(
            status="timed_out",
            output=output,
            error=RunError(
                code="timeout",
                message=f"the run exceeded its timeout of {timeout_seconds} s and was stopped",
                retryable=False,
            ),
            harness_resolved=harness,
        )
    if result.cancelled:
        return RunOutcome(
            status="cancelled",
            output=output,
            error=RunError(code="cancelled", message="the run was cancelled", retryable=False),
            harness_resolved=harness,
        )
    return None


def stdout_outcome(
    harness: str, ctx: HarnessContext, result: ProcessResult, failed_message: str
) -> RunOutcome:
    """The outcome of a harness whose stdout is the answer and whose exit code is the verdict.

    Exit 0 is ``completed``; any other exit is ``failed`` with ``harness_failed``
    and ``failed_message``; timeouts and cancels as :func:`exit_outcome` says.
    """
    stopped = exit_outcome(harness, result, ctx.run.timeout_seconds)
    if stopped is not None:
        return stopped
    warnings = []
    if ctx.run.session_id:
        warnings.append(f"sessionId is ignored by the {harness} harness")
    if result.stdout_truncated:
        warnings.append("output was truncated to the configured maximum")
    output = decode_output(result.stdout)
    if result.exit_code == 0:
        return RunOutcome(
            status="completed", output=output, warnings=warnings or None, harness_resolved=harness
        )
    return RunOutcome(
        status="failed",
        output=output or None,
        error=RunError(code="harness_failed", message=failed_message, retryable=False),
        warnings=warnings or None,
        harness_resolved=harness,
    )
