"""Client commands over the HTTP API, attached to the root ``runyard`` app.

They go through :mod:`runyard.sdk` like any other client and never touch
the store: ``agents`` (with ``agents harnesses``) and ``keys`` in
:mod:`runyard.cli.agents`, ``exec`` and ``runs`` in :mod:`runyard.cli.runs`.
Connection options and error reporting are in :mod:`runyard.cli.connect`,
printing in :mod:`runyard.cli.output`.
"""

from __future__ import annotations

import typer

from runyard.cli.agents import build_agents_app, build_keys_app
from runyard.cli.runs import build_runs_app, exec_
from runyard.cli.schedules import build_schedules_app


def register(app: typer.Typer) -> None:
    """Attach the client command groups to the root app."""
    app.add_typer(build_agents_app(), name="agents")
    app.add_typer(build_keys_app(), name="keys")
    app.command("exec")(exec_)
    app.add_typer(build_runs_app(), name="runs")
    app.add_typer(build_schedules_app(), name="schedules")
