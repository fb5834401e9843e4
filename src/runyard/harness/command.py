"""The ``command`` harness: a configured argv, the prompt on stdin, stdout as the output.

The argv comes from the agent's harness target (``{"harnessName": "command",
"command": ["python3", "-m", "my_agent"]}``) and runs inside the sandbox in
the working directory, so any CLI the environment provides can be an agent.
Exit 0 is ``completed``; anything else is ``failed`` with
``harness_failed``. stderr is never stored.
"""

from __future__ import annotations

from runyard.domain.entities import RunError, RunOutcome
from runyard.domain.policies import HarnessTarget
from runyard.harness.base import (
    Harness,
    HarnessContext,
    HarnessUnavailable,
    Invocation,
    decode_output,
    exit_outcome,
)
from runyard.sandbox.base import ProcessResult


def configured_argv(ctx: HarnessContext) -> list[str]:
    for raw in ctx.agent.harness_targets:
        target = HarnessTarget.model_validate(raw)
        if target.harness_name == "command" and target.command:
            return list(target.command)
    raise HarnessUnavailable('the agent\'s "command" harness target has no argv configured')


class CommandHarness(Harness):
    name = "command"

    def invocation(self, ctx: HarnessContext) -> Invocation:
        return Invocation(argv=configured_argv(ctx), stdin=ctx.run.input.encode())

    def interpret(self, ctx: HarnessContext, result: ProcessResult) -> RunOutcome:
        stopped = exit_outcome(self.name, result, ctx.run.timeout_seconds)
        if stopped is not None:
            return stopped
        warnings = (
            ["output was truncated to the configured maximum"] if result.stdout_truncated else []
        )
        if ctx.run.session_id:
            warnings.append("sessionId is ignored by the command harness")
        output = decode_output(result.stdout)
        if result.exit_code == 0:
            return RunOutcome(
                status="completed",
                output=output,
                warnings=warnings or None,
                harness_resolved=self.name,
            )
        message = f"the command exited with status {result.exit_code}"
        if result.exit_code == 127:
            message = "the command was not found in the agent's environment (exit status 127)"
        return RunOutcome(
            status="failed",
            output=output or None,
            error=RunError(code="harness_failed", message=message, retryable=False),
            warnings=warnings or None,
            harness_resolved=self.name,
        )
