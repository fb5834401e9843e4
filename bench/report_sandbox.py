"""The sandbox start-cost table: three levels of the same ``true``, as ratios to one baseline.

Why: ``bench_sandbox.py`` answers "what does isolation cost per run" at
three levels (a bare spawn, the substrate called directly, a synchronous
``/exec`` over HTTP), and on a noisy shared machine only ratios inside one
run can be compared from run to run. This module renders that table (and
its notes) as Markdown for ``bench/README.md``, between the ``sandbox``
markers; the formatting helpers come from :mod:`report`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from report import machine, ms, pct, ratio, revision
from stats import Latency

START = "<!-- sandbox:start -->"
END = "<!-- sandbox:end -->"


@dataclass
class Row:
    """One measured operation. ``server_cpu_ms`` only for end-to-end rows (the runyard process)."""

    level: str
    label: str
    latency: Latency
    server_cpu_ms: float | None = None
    reference: bool = False  # a row the ratios are taken against within its level


@dataclass
class SandboxReport:
    command: str
    started: dt.datetime
    runs: int
    baseline_label: str
    rows: list[Row]
    environment: str
    drift: tuple[Latency, Latency] | None = None  # (first, again) of the baseline row
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _cpu(row: Row) -> str:
    client = row.latency.cpu_ms_per_op.get("bench", 0.0)
    if row.server_cpu_ms is None:
        return f"{client:.2f}"
    return f"runyard {row.server_cpu_ms:.2f} + client {client:.2f}"


def _cpu_of_system(row: Row) -> float:
    """CPU per call of what is measured: runyard for end-to-end rows, else this process."""
    if row.server_cpu_ms is not None:
        return row.server_cpu_ms
    return row.latency.cpu_ms_per_op.get("bench", 0.0)


def render_sandbox(report: SandboxReport) -> str:
    base = next(r for r in report.rows if r.label == report.baseline_label).latency
    base_cpu = base.cpu_ms_per_op.get("bench", 0.0)
    head = [
        "level",
        "what runs `true`",
        "p50",
        "÷ baseline",
        "p95",
        "÷ baseline",
        "p50 ÷ `process` (same level)",
        "CPU ms per call",
        "÷ baseline",
        "failed",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|---" + "|---:" * (len(head) - 2) + "|"]
    references = {r.level: r.latency for r in report.rows if r.reference}
    for r in report.rows:
        lat = r.latency
        ref = references.get(r.level)
        same_level = ratio(lat.p50_ms, ref.p50_ms) if ref is not None and not r.reference else ""
        cells = [
            r.level,
            r.label,
            ms(lat.p50_ms),
            ratio(lat.p50_ms, base.p50_ms),
            ms(lat.p95_ms),
            ratio(lat.p95_ms, base.p95_ms),
            same_level,
            _cpu(r),
            ratio(_cpu_of_system(r), base_cpu),
            str(lat.errors),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    out = [
        f"Run {report.started:%Y-%m-%d %H:%M} UTC on {machine()}; runyard {revision()}.",
        "",
        report.environment,
        "",
        f"Command: `{report.command}`",
        f"({report.runs} interleaved rounds per level after a warm-up: each round runs every"
        " row of the level once, in an order rotated by one each round.)",
        "",
        *lines,
        "",
        f"Baseline: {report.baseline_label}. `÷ baseline` = the row's number divided by the"
        " baseline's (latency p50 by p50, p95 by p95, CPU by CPU). `÷ process` = the row's p50"
        " divided by the `process` substrate's p50 at the same level: what the isolation"
        " costs over no isolation, measured the same way. CPU per call: this bench process"
        " with the children it reaped (baseline and substrate rows, where the substrate runs"
        " in the bench process); for end-to-end rows the `runyard up` process with its reaped"
        " children, over the whole interleaved phase divided by its calls, and the HTTP"
        " client separately (the ratio compares runyard's CPU only).",
    ]
    if report.drift is not None:
        first, again = report.drift
        out += [
            "",
            f"Baseline drift (re-measured at the end): p50 {ms(again.p50_ms)}"
            f" ({pct(again.p50_ms, first.p50_ms)} vs the start),"
            f" p95 {ms(again.p95_ms)} ({pct(again.p95_ms, first.p95_ms)}).",
        ]
    if report.notes:
        out += ["", *report.notes]
    if report.failures:
        out += ["", "First failures:", "", *[f"- {f}" for f in report.failures[:6]]]
    return "\n".join(out)
