"""How client commands print: raw JSON for scripts, rich tables for people.

Renderers take the wire documents and read them defensively (``.get``), so a
field a newer or older server leaves out prints as ``-`` instead of failing.
Every cell is a :class:`rich.text.Text`, so names with ``[brackets]`` are
shown literally, never parsed as markup. When stdout is not a terminal the
console is made wide, so piped tables are not wrapped or truncated.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

_PIPE_WIDTH = 10_000
_NONE = "-"


def console() -> Console:
    wide = None if sys.stdout.isatty() else _PIPE_WIDTH
    return Console(highlight=False, width=wide, soft_wrap=False)


def print_json(doc: Any) -> None:
    """The document exactly as the server sent it, pretty-printed, on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A line for people on stderr (stdout stays the command's result)."""
    typer.echo(message, err=True)


def _cell(value: Any) -> Text:
    if value is None or value == "":
        return Text(_NONE)
    return Text(str(value))


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def field_text(doc: Any, *path: str) -> str:
    """A nested field as text, ``-`` when absent."""
    value = _get(doc, *path)
    return _NONE if value is None else str(value)


def table_of(*columns: str) -> Table:
    """An empty table with bold headers and folding columns, the CLI's one style."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _details(rows: Iterable[tuple[str, Any]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(Text(label), _cell(value))
    return table


def _duration(start: Any, end: Any) -> str | None:
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None
    return f"{seconds:.1f}s"


def harnesses_text(targets: Any) -> str:
    """``shell (default), hermes (available), codex (disabled)``."""
    if not isinstance(targets, list):
        return _NONE
    parts = []
    for t in targets:
        role = _get(t, "role") if _get(t, "enabled") else "disabled"
        parts.append(f"{_get(t, 'harnessName')} ({role})")
    return ", ".join(parts) or _NONE


def more_hint(doc: Mapping[str, Any], command: str) -> None:
    """Tell a person how to fetch the next page, if there is one."""
    cursor = doc.get("nextCursor")
    if doc.get("hasMore") and cursor:
        note(f"more: {command} --cursor {cursor}")


def agents_table(items: Any) -> None:
    table = table_of("SLUG", "NAME", "ID", "ENVIRONMENT", "HARNESSES", "CREATED")
    for item in items if isinstance(items, list) else []:
        agent = _get(item, "agent")
        table.add_row(
            _cell(_get(agent, "slug")),
            _cell(_get(agent, "name")),
            _cell(_get(agent, "id")),
            _cell(_get(item, "environment", "status")),
            _cell(harnesses_text(_get(agent, "harnessTargets"))),
            _cell(_get(agent, "createdAt")),
        )
    console().print(table)


def agent_details(doc: Mapping[str, Any]) -> None:
    agent = _get(doc, "agent")
    env = _get(doc, "environment")
    model = " / ".join(
        str(v)
        for v in (_get(agent, "modelPolicy", "provider"), _get(agent, "modelPolicy", "model"))
        if v
    )
    limits = _get(agent, "runtimePolicy", "resourceLimits")
    resources = (
        f"{_get(limits, 'memoryMiB')} MiB, {_get(limits, 'cpus')} cpus, {_get(limits, 'pids')} pids"
        if isinstance(limits, Mapping)
        else None
    )
    console().print(
        _details(
            [
                ("id", _get(agent, "id")),
                ("name", _get(agent, "name")),
                ("slug", _get(agent, "slug")),
                ("created", _get(agent, "createdAt")),
                ("updated", _get(agent, "updatedAt")),
                ("harnesses", harnesses_text(_get(agent, "harnessTargets"))),
                ("model", model),
                ("network", _get(agent, "runtimePolicy", "networkPolicy", "mode")),
                ("resources", resources),
                ("max concurrent runs", _get(agent, "runtimePolicy", "maxConcurrentRuns")),
                ("environment", _get(env, "status")),
                ("attention", _get(env, "attention")),
                ("ready at", _get(env, "readyAt")),
                ("last error", _get(env, "lastError")),
                ("reconciliation", _get(env, "runtimeReconciliation", "status")),
            ]
        )
    )


def keys_table(keys: Any) -> None:
    table = table_of("ID", "NAME", "KIND", "PREFIX", "CREATED", "LAST USED", "REVOKED")
    for key in keys if isinstance(keys, list) else []:
        table.add_row(
            _cell(_get(key, "id")),
            _cell(_get(key, "name")),
            _cell(_get(key, "kind")),
            _cell(f"{_get(key, 'prefix')}…" if _get(key, "prefix") else None),
            _cell(_get(key, "createdAt")),
            _cell(_get(key, "lastUsedAt")),
            _cell(_get(key, "revokedAt")),
        )
    console().print(table)


def runs_table(runs: Any) -> None:
    table = table_of("RUN ID", "STATUS", "HARNESS", "CREATED", "DURATION", "ERROR")
    for run in runs if isinstance(runs, list) else []:
        table.add_row(
            _cell(_get(run, "id")),
            _cell(_get(run, "status")),
            _cell(_get(run, "harness", "resolved") or _get(run, "harness", "requested")),
            _cell(_get(run, "createdAt")),
            _cell(_duration(_get(run, "startedAt"), _get(run, "completedAt"))),
            _cell(_get(run, "error", "code")),
        )
    console().print(table)


def run_details(run: Mapping[str, Any]) -> None:
    error = _get(run, "error")
    error_text = f"{_get(error, 'code')}: {_get(error, 'message')}" if _get(error, "code") else None
    warnings = _get(run, "warnings")
    out = console()
    out.print(
        _details(
            [
                ("id", _get(run, "id")),
                ("agent", _get(run, "agentId")),
                ("status", _get(run, "status")),
                ("harness", _get(run, "harness", "resolved") or _get(run, "harness", "requested")),
                ("timeout", _get(run, "request", "timeoutSeconds")),
                ("created", _get(run, "createdAt")),
                ("started", _get(run, "startedAt")),
                ("completed", _get(run, "completedAt")),
                ("duration", _duration(_get(run, "startedAt"), _get(run, "completedAt"))),
                ("error", error_text),
                ("warnings", json.dumps(warnings) if warnings else None),
                ("total tokens", _get(run, "tokenUsage", "totalTokens")),
                ("tool calls", _get(run, "toolUsage", "toolCallCount")),
            ]
        )
    )
    output = _get(run, "output")
    if output:
        out.print(Text("output:", style="bold"))
        out.print(Text(str(output)), end="" if str(output).endswith("\n") else "\n")
