"""The connection options every client command takes, and how errors end a command.

Each client command accepts ``--base-url``, ``--api-key``, ``--workspace``
and ``--data-dir`` (resolved by :func:`runyard.sdk.resolve_connection`:
flags, then ``RUNYARD_*``, then the data dir's ``credentials.json``) and
opens the SDK client through :func:`connected`. That context manager is the
one place where a :class:`~runyard.errors.RunyardError` becomes a message on
stderr and an exit code: 1 for anything the server or the network said, 2
for a usage or configuration problem. No API error ends in a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from runyard.errors import ConfigError, RemoteError, RunyardError
from runyard.sdk import Client, ClientFailure

EXIT_API_ERROR = 1
EXIT_USAGE = 2

_PANEL = "Connection"

BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="runyard URL (env RUNYARD_BASE_URL; default: from credentials.json).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key (env RUNYARD_API_KEY; default: from credentials.json).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        help="Workspace slug (env RUNYARD_WORKSPACE; default: from credentials.json).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data dir of `runyard up` holding credentials.json (env RUNYARD_DATA_DIR;"
        " default ./.runyard).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw JSON document (for scripts).")]


def describe(err: RunyardError) -> str:
    """One line for stderr: ``CODE: message (runId: …)``; client failures without a code."""
    if isinstance(err, ClientFailure | ConfigError):
        return err.message
    code = err.remote_code if isinstance(err, RemoteError) else err.code
    text = f"{code}: {err.message}"
    run_id = err.data.get("runId")
    if run_id:
        text += f" (runId: {run_id})"
    return text


def fail(message: str, code: int = EXIT_API_ERROR) -> typer.Exit:
    """Print ``runyard: message`` on stderr; raise the returned exit to end the command."""
    typer.echo(f"runyard: {message}", err=True)
    return typer.Exit(code=code)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn any runyard error raised inside into a message and an exit code."""
    try:
        yield
    except ConfigError as err:
        raise fail(describe(err), EXIT_USAGE) from None
    except RunyardError as err:
        raise fail(describe(err)) from None


@contextmanager
def connected(
    base_url: str | None,
    api_key: str | None,
    workspace: str | None,
    data_dir: Path | None,
) -> Iterator[Client]:
    """An SDK client for the resolved connection, with errors reported as above."""
    with reporting():
        client = Client.discover(
            base_url=base_url,
            api_key=api_key,
            workspace=workspace,
            data_dir=data_dir,
            source="CLI",
        )
        with client:
            yield client
