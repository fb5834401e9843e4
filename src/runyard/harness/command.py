"""The ``command`` harness: a configured argv, the prompt on stdin, stdout as the output.

The argv comes from the agent's harness target (``{"harnessName": "command",
"command": ["python3", "-m", "my_agent"]}``) and runs inside the sandbox in
the working directory, so any CLI the environment provides can be an agent.
Exit 0 is ``completed``; anything else is ``failed`` with
``harness_failed``. stderr is never stored.
"""

from __future__ import annotations

from runyard.domain.entities import RunOutcome
from runyard.domain.policies import HarnessTarget
from runyard.errors import HarnessUnavailable
from runyard.harness.base import (
    Harness,
    HarnessContext,
    Invocation,
    stdout_outcome,
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
    streams_output = True

    def invocation(self, ctx: HarnessContext) -> Invocation:
        return Invocation(argv=configured_argv(ctx), stdin=ctx.run.input.encode())

    def interpret(self, ctx: HarnessContext, result: ProcessResult) -> RunOutcome:
        message = f"the command exited with status {result.exit_code}"
        if result.exit_code == 127:
            message = "the command was not found in the agent's environment (exit status 127)"
        return stdout_outcome(self.name, ctx, result, message)
