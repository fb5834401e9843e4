"""``runyard runs submit|cancel|events|watch``: asynchronous runs over the SDK.

``submit`` prints the new run's id (``--json``: the whole answer); ``watch``
follows the run's event stream with a live line (status, steps taken and the
latest one, output so far, artifacts) and exits with the run's final status:
0 when it completed, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.live import Live
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
from runyard.domain.states import is_terminal

RunIdArg = Annotated[str, typer.Argument(help="The run's id (run_…).", show_default=False)]
MAX_RESUMES = 100


def submit(
    agent: AgentArg,
    input: Annotated[str, typer.Argument(help="The prompt; '-' reads stdin.", show_default=False)],
    *,
    title: Annotated[str | None, typer.Option("--title", help="A title for the run.")] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Retrying with the same key returns the same run."),
    ] = None,
    harness: Annotated[
        str | None, typer.Option("--harness", help="Run on this enabled harness.")
    ] = None,
    timeout_seconds: Annotated[
        int | None, typer.Option("--timeout-seconds", min=1, help="Kill the run after this.")
    ] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Queue INPUT on AGENT without waiting; prints the run id."""
    text = sys.stdin.read() if input == "-" else input
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.submit_run(
            agent,
            text,
            title=title,
            idempotency_key=idempotency_key,
            harness=harness,
            timeout_seconds=timeout_seconds,
        )
    if as_json:
        output.print_json(doc)
        return
    sys.stdout.write(f"{doc.get('runId')}\n")


def cancel(
    agent: AgentArg,
    run_id: RunIdArg,
    *,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Cancel RUN_ID: a queued run at once, a running one as soon as its worker sees it."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.cancel_run(agent, run_id)
    if as_json:
        output.print_json(doc)
        return
    what = "cancellation requested" if doc.get("cancelRequested") else "cancelled"
    sys.stdout.write(f"{doc.get('runId')}: {what} (status: {doc.get('status')})\n")


def _event_line(event: dict[str, Any]) -> str:
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if event.get("type") == "status":
        extra = f" ({data['errorCode']})" if data.get("errorCode") else ""
        detail = f"{data.get('status')}{extra}"
    elif event.get("type") in ("output", "output_chunk"):
        detail = f"{len(str(data.get('text') or ''))} characters of output"
    elif event.get("type") == "step":
        detail = f"{data.get('type')} {data.get('name')}: {data.get('status')}"
    elif event.get("type") == "artifact":
        detail = f"{data.get('name')} ({data.get('sizeBytes')} bytes)"
    else:
        detail = ""
    return f"{event.get('seq')}\t{event.get('createdAt')}\t{event.get('type')}\t{detail}".rstrip()


def events(
    agent: AgentArg,
    run_id: RunIdArg,
    *,
    since: Annotated[int | None, typer.Option("--since", min=0, help="After this seq.")] = None,
    as_json: JsonOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List RUN_ID's events (status changes, output), oldest first."""
    with connected(base_url, api_key, workspace, data_dir) as client:
        doc = client.list_run_events(agent, run_id, since=since)
    if as_json:
        output.print_json(doc)
        return
    for event in doc.get("events") or []:
        sys.stdout.write(_event_line(event) + "\n")


def watch(
    agent: AgentArg,
    run_id: RunIdArg,
    *,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    workspace: WorkspaceOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Follow RUN_ID live until it ends; exit 0 if it completed, else 1."""
    status = "unknown"
    last: int | None = None
    seen = _Progress()
    out = output.console()
    with (
        connected(base_url, api_key, workspace, data_dir) as client,
        Live(Text(f"{run_id}: waiting…"), console=out, transient=False) as live,
    ):
        for _ in range(MAX_RESUMES):
            for event in client.stream_run_events(agent, run_id, last_event_id=last):
                last = int(event.get("seq") or 0)
                data = event.get("data")
                if event.get("type") == "status" and isinstance(data, dict):
                    status = str(data.get("status"))
                seen.add(event)
                live.update(Text(f"{run_id}: {status}{seen.line()} (event {last})"))
            if is_terminal(status):
                break
            # The stream ended early (its maximum duration): resume after ``last``.
            run = client.get_run(agent, run_id).get("run") or {}
            if is_terminal(str(run.get("status"))):
                status = str(run.get("status"))
                break
        live.update(Text(f"{run_id}: {status}{seen.line()}"))
    if not out.is_terminal:
        out.file.write("\n")  # Live leaves its last line open when not on a terminal
    if status != "completed":
        raise typer.Exit(1)


class _Progress:
    """What ``watch`` shows besides the status: steps, the latest one, output, artifacts."""

    def __init__(self) -> None:
        self.steps = 0
        self.latest = ""
        self.output_chars = 0
        self.artifacts = 0

    def add(self, event: dict[str, Any]) -> None:
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        kind = event.get("type")
        if kind == "step" and data.get("type") != "input":
            self.steps += 1
            self.latest = f"{data.get('type')} {data.get('name')}"
        elif kind == "output_chunk":
            self.output_chars += len(str(data.get("text") or ""))
        elif kind == "output":
            self.output_chars = len(str(data.get("text") or ""))
        elif kind == "artifact":
            self.artifacts += 1

    def line(self) -> str:
        parts = []
        if self.steps:
            parts.append(f"{_count(self.steps, 'step')}, last {self.latest}")
        if self.output_chars:
            parts.append(f"{self.output_chars} chars of output")
        if self.artifacts:
            parts.append(_count(self.artifacts, "artifact"))
        return "".join(f" · {p}" for p in parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
