"""``runyard schedules …``: an agent's cron schedules over the SDK.

``list``, ``create``, ``pause``, ``resume`` and ``delete``; AGENT is a slug or
an ``agent_…`` id. A cron expression has 5 fields, or 6 with seconds last;
``--timezone`` takes an IANA name (default UTC).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from runyard.cli import output
from runyard.cli.agents import AgentArg
from runyard.cli.connect import (
    ApiKeyOpt,
    BaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    WorkspaceOpt,
    connected,
)

IdArg = Annotated[str, typer.Argument(help="Schedule id (sched_…).", show_default=False)]


def _table(items: Any) -> None:
    table = output.table_of(
        "ID", "NAME", "CRON", "TIMEZONE", "STATE", "NEXT RUN", "LAST RUN", "ERROR"
    )
    for s in items if isinstance(items, list) else []:
        state = "paused" if s.get("paused") else ("enabled" if s.get("enabled") else "disabled")
        table.add_row(
            output.field_text(s, "id"),
            output.field_text(s, "name"),
            output.field_text(s, "cron"),
            output.field_text(s, "timezone"),
            state,
            output.field_text(s, "history", "nextRun"),
            output.field_text(s, "history", "lastRan"),
            output.field_text(s, "lastSpawnError"),
        )
    output.console().print(table)


def _show(doc: Any, as_json: bool) -> None:
    if as_json:
        output.print_json(doc)
    else:
        _table([doc])


def list_schedules(
    agent: AgentArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the agent's schedules."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_schedules(agent)
    if as_json:
        output.print_json(doc)
        return
    _table(doc.get("schedules"))


def create_schedule(
    agent: AgentArg,
    cron: Annotated[str, typer.Argument(help="Cron: 5 fields, or 6 with seconds last.")],
    prompt: Annotated[str, typer.Argument(help="The prompt each run receives.")],
    *,
    name: Annotated[str | None, typer.Option("--name", help="Name (default: the cron).")] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA timezone.")] = "UTC",
    harness: Annotated[str | None, typer.Option("--harness", help="Harness to use.")] = None,
    timeout: Annotated[
        int | None, typer.Option("--timeout", min=1, help="Run timeout in seconds.")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a schedule that submits PROMPT as a run at every CRON tick."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.create_schedule(
            agent,
            name=name or cron,
            cron=cron,
            prompt=prompt,
            timezone=timezone,
            enabled=not disabled,
            harness=harness,
            timeout_seconds=timeout,
        )
    _show(doc, as_json)


def pause_schedule(
    agent: AgentArg,
    schedule_id: IdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Pause a schedule (it stops firing until resumed)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.pause_schedule(agent, schedule_id)
    _show(doc, as_json)


def resume_schedule(
    agent: AgentArg,
    schedule_id: IdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Resume a schedule; its next run is the next tick after now."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.resume_schedule(agent, schedule_id)
    _show(doc, as_json)


def delete_schedule(
    agent: AgentArg,
    schedule_id: IdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a schedule (runs it already started are not affected)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.delete_schedule(agent, schedule_id)
    if as_json:
        output.print_json(doc)
        return
    output.note(f"deleted schedule {schedule_id}")


def build_schedules_app() -> typer.Typer:
    app = typer.Typer(help="Manage agents' cron schedules.", no_args_is_help=True)
    app.command("list")(list_schedules)
    app.command("create")(create_schedule)
    app.command("pause")(pause_schedule)
    app.command("resume")(resume_schedule)
    app.command("delete")(delete_schedule)
    return app
