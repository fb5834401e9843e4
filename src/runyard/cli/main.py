"""The root ``runyard`` Typer application: server commands plus client commands."""

from __future__ import annotations

import typer

from runyard.cli import server

app = typer.Typer(
    help="runyard: a self-hosted runtime for AI agents.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(server.up)
app.command()(server.serve)
app.command()(server.worker)
app.command()(server.migrate)
app.add_typer(server.admin, name="admin")

from runyard.cli import client  # noqa: E402
from runyard.cli.webhooks import build_webhooks_app  # noqa: E402

client.register(app)
app.add_typer(build_webhooks_app(), name="webhooks")


def main() -> None:
    app()
