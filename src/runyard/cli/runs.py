"""``runyard exec`` and ``runyard runs …``: the runtime API over the SDK.

``exec`` writes the run's output text to stdout exactly as the harness
produced it (no added newline, no decoration), so it can be piped. A run
that fails, times out, is cancelled or outlives the wait prints
``CODE: message (runId: …)`` on stderr and exits 1.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from runyard.cli import output, run_async, run_outputs
from runyard.cli.agents import AgentArg, CursorOpt, LimitOpt
from runyard.cli.connect import (
    ApiKeyOpt,
    BaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    WorkspaceOpt,
    connected,
)


def exec_(
    agent: AgentArg,
    input: Annotated[
        str,
        typer.Argument(
            help="The prompt (for the shell harness: a bash script); '-' reads stdin.",
            show_default=False,
        ),
    ],
    *,
    harness: Annotated[
        str | None, typer.Option("--harness", help="Run on this enabled harness.")
    ] = None,
    timeout_seconds: Annotated[
        int | None, typer.Option("--timeout-seconds", min=1, help="Kill the run after this.")
    ] = None,
    session_id: Annotated[
        str | None, typer.Option("--session-id", help="Continue a harness session.")
    ] = None,
    cwd: Annotated[
        str | None, typer.Option("--cwd", help="Working directory, relative to the home.")
    ] = None,
    workspace_path: Annotated[
        str | None,
        typer.Option("--workspace-path", help="Runtime workspace path, relative to the home."),
    ] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Run INPUT on AGENT, wait for it, and print its output."""
    text = sys.stdin.read() if input == "-" else input
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.exec(
            agent,
            text,
            harness=harness,
            session_id=session_id,
            timeout_seconds=timeout_seconds,
            workspace_path=workspace_path,
            cwd=cwd,
        )
    if as_json:
        output.print_json(doc)
        return
    result = doc.get("output")
    sys.stdout.write(str(result.get("text") or "") if isinstance(result, dict) else "")
    sys.stdout.flush()
    for warning in doc.get("warnings") or []:
        output.note(f"warning: {warning}")


def list_runs(
    agent: AgentArg,
    *,
    limit: LimitOpt = None,
    cursor: CursorOpt = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List AGENT's runs, newest first (support-safe: no prompts)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_runs(agent, limit=limit, cursor=cursor)
    if as_json:
        output.print_json(doc)
        return
    output.runs_table(doc.get("runs"))
    output.more_hint(doc, f"runyard runs list {agent}")


def get_run(
    agent: AgentArg,
    run_id: run_async.RunIdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show one run: status, timing, error, usage and output."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.get_run(agent, run_id)
    if as_json:
        output.print_json(doc)
        return
    run = doc.get("run")
    output.run_details(run if isinstance(run, dict) else {})


def build_runs_app() -> typer.Typer:
    app = typer.Typer(
        help="Read an agent's run history; submit, cancel and follow runs.",
        no_args_is_help=True,
    )
    app.command("list")(list_runs)
    app.command("get")(get_run)
    app.command("submit")(run_async.submit)
    app.command("cancel")(run_async.cancel)
    app.command("events")(run_async.events)
    app.command("watch")(run_async.watch)
    app.command("canvas")(run_outputs.canvas)
    app.command("artifacts")(run_outputs.artifacts)
    return app
