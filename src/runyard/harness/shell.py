"""The ``shell`` harness: the input is a bash script, its stdout the output.

Meant for operations and tests. The script is written to the run's private
directory and run with ``bash --noprofile --norc`` in the working directory;
stdin is empty so the script cannot read itself. It has no sessions, no
model and no tool calls: ``sessionId`` is ignored with a warning.
"""

from __future__ import annotations

import shutil

from runyard.domain.entities import RunOutcome
from runyard.errors import HarnessUnavailable
from runyard.harness.base import (
    Harness,
    HarnessContext,
    Invocation,
    stdout_outcome,
)
from runyard.sandbox.base import ProcessResult

SCRIPT = "script.sh"


class ShellHarness(Harness):
    name = "shell"
    streams_output = True

    def check(self) -> None:
        if shutil.which("bash") is None:
            raise HarnessUnavailable("bash is not installed on this host")

    def invocation(self, ctx: HarnessContext) -> Invocation:
        return Invocation(
            argv=["bash", "--noprofile", "--norc", f"{ctx.paths.run_dir}/{SCRIPT}"],
            files={SCRIPT: ctx.run.input.encode()},
        )

    def interpret(self, ctx: HarnessContext, result: ProcessResult) -> RunOutcome:
        message = f"the shell script exited with status {result.exit_code}"
        return stdout_outcome(self.name, ctx, result, message)
