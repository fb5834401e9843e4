"""``runyard agents …`` and ``runyard keys …``: the control plane over the SDK.

AGENT is a slug or an ``agent_…`` id everywhere; the SDK resolves whichever
form the endpoint does not take. ``agents delete`` asks the user to type the
slug unless ``--yes`` is given, and refuses (instead of waiting forever) when
stdin is not a terminal.
"""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Any

import typer

from runyard.cli import output
from runyard.cli.connect import (
    EXIT_USAGE,
    ApiKeyOpt,
    BaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    WorkspaceOpt,
    connected,
    fail,
)
from runyard.sdk.core import field_of

AgentArg = Annotated[str, typer.Argument(help="Agent slug or agent_… id.", show_default=False)]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, max=100, help="Page size (1-100).")]
CursorOpt = Annotated[str | None, typer.Option("--cursor", help="nextCursor of the last page.")]


def list_agents(
    *,
    limit: LimitOpt = None,
    cursor: CursorOpt = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the workspace's agents, newest first."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_agents(limit=limit, cursor=cursor)
    if as_json:
        output.print_json(doc)
        return
    output.agents_table(doc.get("agents"))
    output.more_hint(doc, "runyard agents list")


def create_agent(
    name: Annotated[str, typer.Argument(help="Display name; the slug is derived from it.")],
    *,
    slug: Annotated[str | None, typer.Option("--slug", help="Explicit slug.")] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an agent (its environment is provisioned in the background)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.create_agent(name, slug=slug)
    if as_json:
        output.print_json(doc)
        return
    output.agent_details(doc)


def get_agent(
    agent: AgentArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show an agent and its environment."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.get_agent(agent)
    if as_json:
        output.print_json(doc)
        return
    output.agent_details(doc)


def rename_agent(
    agent: AgentArg,
    new_name: Annotated[str, typer.Argument(help="New display name (the slug follows it).")],
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rename an agent; its slug changes to match the new name."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.rename_agent(agent, new_name)
    if as_json:
        output.print_json(doc)
        return
    output.agent_details(doc)


def _confirm(slug: str) -> None:
    typed = typer.prompt(
        f"Type the agent's slug ({slug}) to delete it", default="", show_default=False
    )
    if typed.strip() != slug:
        raise fail(f"confirmation {typed.strip()!r} does not match {slug!r}; nothing was deleted")


def delete_agent(
    agent: AgentArg,
    *,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking to type the slug.")
    ] = False,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete an agent and its environment (asks to type the slug unless --yes)."""
    if not yes and (sys.stdin is None or not sys.stdin.isatty()):
        raise fail(
            "refusing to delete without confirmation: stdin is not a terminal; pass --yes",
            EXIT_USAGE,
        )
    with connected(base_url, api_key, workspace, data_dir) as client:
        slug: str = field_of(client.get_agent(agent), "agent", "slug")
        if not yes:
            _confirm(slug)
        doc = client.delete_agent(slug, confirmation_slug=slug)
    if as_json:
        output.print_json(doc)
        return
    typer.echo(f"deleted agent {slug} ({output.field_text(doc, 'agent', 'id')})")


def set_harnesses(
    agent: AgentArg,
    *,
    default: Annotated[
        str, typer.Option("--default", help="The default harness.", show_default=False)
    ],
    available: Annotated[
        list[str] | None,
        typer.Option("--available", help="Also enabled (repeatable).", show_default=False),
    ] = None,
    disabled: Annotated[
        list[str] | None,
        typer.Option(
            "--disabled", help="Configured but disabled (repeatable).", show_default=False
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            help="The argv of the 'command' harness, as one shell-quoted string.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Replace the agent's complete set of harnesses."""
    names = [default, *(available or []), *(disabled or [])]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise typer.BadParameter(f"harness named more than once: {', '.join(repeated)}")
    targets: list[dict[str, Any]] = [{"harnessName": default, "enabled": True, "role": "default"}]
    targets += [{"harnessName": n, "enabled": True, "role": "available"} for n in available or []]
    targets += [{"harnessName": n, "enabled": False, "role": "available"} for n in disabled or []]
    if command is not None:
        argv = shlex.split(command)
        for target in targets:
            if target["harnessName"] == "command":
                target["command"] = argv
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.set_harnesses(agent, targets)
    if as_json:
        output.print_json(doc)
        return
    output.agent_details(doc)


def create_key(
    agent: AgentArg,
    *,
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Issue a runtime key (sk_agent_…) for AGENT; the secret is printed once, on stdout."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.create_key(agent, name=name)
    if as_json:
        output.print_json(doc)
        return
    output.note(
        f"created key {output.field_text(doc, 'key', 'id')} for agent"
        f" {output.field_text(doc, 'key', 'agentId')}; its secret is shown only now:"
    )
    typer.echo(output.field_text(doc, "secret"))


def list_keys(
    agent: AgentArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List AGENT's runtime keys (never their secrets)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_keys(agent)
    if as_json:
        output.print_json(doc)
        return
    output.keys_table(doc.get("keys"))


def revoke_key(
    agent: AgentArg,
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…).", show_default=False)],
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke one of AGENT's runtime keys; it stops working at once."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.revoke_key(agent, key_id)
    if as_json:
        output.print_json(doc)
        return
    output.keys_table([doc.get("key")])


def build_agents_app() -> typer.Typer:
    app = typer.Typer(help="Create, inspect and manage agents.", no_args_is_help=True)
    app.command("list")(list_agents)
    app.command("create")(create_agent)
    app.command("get")(get_agent)
    app.command("rename")(rename_agent)
    app.command("delete")(delete_agent)
    harnesses = typer.Typer(help="Choose the harnesses an agent can run.", no_args_is_help=True)
    harnesses.command("set")(set_harnesses)
    app.add_typer(harnesses, name="harnesses")
    return app


def build_keys_app() -> typer.Typer:
    app = typer.Typer(help="Manage agents' runtime keys (sk_agent_…).", no_args_is_help=True)
    app.command("create")(create_key)
    app.command("list")(list_keys)
    app.command("revoke")(revoke_key)
    return app
