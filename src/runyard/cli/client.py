"""Client commands over the HTTP API (placeholder until the SDK-based CLI lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the client command groups to the root app."""
