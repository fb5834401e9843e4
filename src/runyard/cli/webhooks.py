"""``runyard webhooks …``: a workspace's webhooks over the SDK.

``create``, ``list``, ``show``, ``update``, ``delete``, ``rotate-secret`` and
``deliveries``. ``create`` and ``rotate-secret`` print the signing secret
once, alone on stdout (a note on stderr says so), like ``runyard keys
create``; every command takes ``--json`` for the raw document.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from runyard.cli import output
from runyard.cli.connect import (
    ApiKeyOpt,
    BaseUrlOpt,
    DataDirOpt,
    JsonOpt,
    WorkspaceOpt,
    connected,
)

IdArg = Annotated[str, typer.Argument(help="Webhook id (wh_…).", show_default=False)]
EventsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        help="An event type to subscribe to (repeat it): run.started, run.completed,"
        " run.failed, run.cancelled.",
        show_default=False,
    ),
]
DescriptionOpt = Annotated[
    str | None, typer.Option("--description", help="A note for people.", show_default=False)
]


def _text(doc: Any, *path: str) -> Text:
    return Text(output.field_text(doc, *path))


def _webhooks_table(items: Any) -> None:
    table = output.table_of("ID", "URL", "EVENTS", "ENABLED", "DESCRIPTION", "CREATED")
    for w in items if isinstance(items, list) else []:
        events = w.get("events") if isinstance(w, dict) else None
        table.add_row(
            _text(w, "id"),
            _text(w, "url"),
            Text(", ".join(events) if isinstance(events, list) else "-"),
            Text("yes" if isinstance(w, dict) and w.get("enabled") else "no"),
            _text(w, "description"),
            _text(w, "createdAt"),
        )
    output.console().print(table)


def _deliveries_table(items: Any) -> None:
    table = output.table_of(
        "ID", "TYPE", "RUN", "STATUS", "ATTEMPTS", "HTTP", "NEXT ATTEMPT", "ERROR"
    )
    for d in items if isinstance(items, list) else []:
        table.add_row(
            _text(d, "id"),
            _text(d, "type"),
            _text(d, "runId"),
            _text(d, "status"),
            _text(d, "attempts"),
            _text(d, "responseStatus"),
            _text(d, "nextAttemptAt"),
            _text(d, "lastError"),
        )
    output.console().print(table)


def _show(doc: Any, as_json: bool) -> None:
    if as_json:
        output.print_json(doc)
    else:
        _webhooks_table([doc.get("webhook")])


def _secret(doc: Any, as_json: bool, what: str) -> None:
    if as_json:
        output.print_json(doc)
        return
    output.note(
        f"{what} webhook {output.field_text(doc, 'webhook', 'id')}; its signing secret"
        " is shown only now:"
    )
    typer.echo(output.field_text(doc, "secret"))


def create_webhook(
    url: Annotated[str, typer.Argument(help="Where to POST events (http:// or https://).")],
    *,
    events: EventsOpt = None,
    description: DescriptionOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a webhook (default events: run.started, run.completed, run.failed)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.create_webhook(
            url, events=events or None, description=description, enabled=not disabled
        )
    _secret(doc, as_json, "created")


def list_webhooks(
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the workspace's webhooks (never their secrets)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_webhooks()
    if as_json:
        output.print_json(doc)
        return
    _webhooks_table(doc.get("webhooks"))


def show_webhook(
    webhook_id: IdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show one webhook."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.get_webhook(webhook_id)
    _show(doc, as_json)


def update_webhook(
    webhook_id: IdArg,
    *,
    url: Annotated[str | None, typer.Option("--url", help="A new target URL.")] = None,
    events: EventsOpt = None,
    description: DescriptionOpt = None,
    enabled: Annotated[
        bool | None,
        typer.Option(
            "--enable/--disable", help="Start or stop sending events.", show_default=False
        ),
    ] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a webhook's URL, events, description or whether it is enabled."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "url": url,
            "events": events or None,
            "description": description,
            "enabled": enabled,
        }.items()
        if v is not None
    }
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.update_webhook(webhook_id, **changes)
    _show(doc, as_json)


def delete_webhook(
    webhook_id: IdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete a webhook and its deliveries (pending ones are never sent)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.delete_webhook(webhook_id)
    if as_json:
        output.print_json(doc)
        return
    output.note(f"deleted webhook {webhook_id}")


def rotate_secret(
    webhook_id: IdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Replace the webhook's signing secret; the new one is printed once, on stdout."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.rotate_webhook_secret(webhook_id)
    _secret(doc, as_json, "rotated the secret of")


def list_deliveries(
    webhook_id: IdArg,
    *,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Page size.")] = 20,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="From a previous page.", show_default=False)
    ] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List a webhook's deliveries, newest first."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_webhook_deliveries(webhook_id, limit=limit, cursor=cursor)
    if as_json:
        output.print_json(doc)
        return
    _deliveries_table(doc.get("deliveries"))
    output.more_hint(doc, f"runyard webhooks deliveries {webhook_id}")


def build_webhooks_app() -> typer.Typer:
    app = typer.Typer(help="Manage the workspace's webhooks.", no_args_is_help=True)
    app.command("create")(create_webhook)
    app.command("list")(list_webhooks)
    app.command("show")(show_webhook)
    app.command("update")(update_webhook)
    app.command("delete")(delete_webhook)
    app.command("rotate-secret")(rotate_secret)
    app.command("deliveries")(list_deliveries)
    return app
