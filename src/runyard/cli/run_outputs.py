"""``runyard runs canvas|artifacts``: what a run did, and the files it produced.

``canvas`` prints the run's step DAG as a table (one block a row, with the
blocks it depends on); ``artifacts`` lists the files the run wrote under
``outputs/`` and, with ``--download DIR``, saves them there (through their
signed links, checking each file's SHA-256).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.text import Text

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
from runyard.cli.run_async import RunIdArg


def _short(block_id: Any) -> str:
    return str(block_id)[:8]


def canvas(
    agent: AgentArg,
    run_id: RunIdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show RUN_ID's canvas: its prompt, model calls, tool calls, output and artifacts."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.get_run_canvas(agent, run_id)
    if as_json:
        output.print_json(doc)
        return
    progress = doc.get("progress") or {}
    output.console().print(
        Text(
            f"{doc.get('canvasId')}: {doc.get('status')} · "
            f"{progress.get('tasksCompleted')}/{progress.get('tasksTotal')} tasks · "
            f"{progress.get('elapsedMs')} ms"
        )
    )
    table = output.table_of("BLOCK", "TYPE", "NAME", "STATUS", "AFTER")
    for block in doc.get("blocks") or []:
        table.add_row(
            _short(block.get("id")),
            str(block.get("type")),
            str(block.get("name")),
            str(block.get("status")),
            ", ".join(_short(p) for p in block.get("parents") or []) or "-",
        )
    output.console().print(table)


def artifacts(
    agent: AgentArg,
    run_id: RunIdArg,
    *,
    download: Annotated[
        Path | None,
        typer.Option("--download", help="Save the artifacts into this directory."),
    ] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the files RUN_ID wrote under outputs/ (and download them)."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_run_artifacts(agent, run_id)
    items = doc.get("artifacts") or []
    if download is not None:
        for item in items:
            _save(item, download)
    if as_json:
        output.print_json(doc)
        return
    table = output.table_of("NAME", "TYPE", "BYTES", "SHA256")
    for item in items:
        table.add_row(
            str(item.get("name")),
            str(item.get("type")),
            str(item.get("sizeBytes")),
            str(item.get("sha256"))[:16],
        )
    output.console().print(table)


def _save(item: dict[str, Any], directory: Path) -> None:
    """Download one artifact under ``directory``, refusing names that would leave it."""
    name = str(item.get("name") or "")
    target = (directory / name).resolve()
    if not target.is_relative_to(directory.resolve()) or not name:
        output.note(f"skipped {name!r}: its name leaves the download directory")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    partial = target.with_name(target.name + ".part")
    with httpx.stream("GET", str(item.get("downloadUrl")), timeout=60) as resp:
        if resp.status_code != 200:
            output.note(f"could not download {name!r}: HTTP {resp.status_code}")
            raise typer.Exit(1)
        with partial.open("wb") as fh:
            for chunk in resp.iter_bytes():
                digest.update(chunk)
                fh.write(chunk)
    if digest.hexdigest() != item.get("sha256"):
        partial.unlink(missing_ok=True)
        output.note(f"{name!r} did not match its sha256; not saved")
        raise typer.Exit(1)
    partial.replace(target)
