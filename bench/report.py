"""The results table: absolute numbers, ratios to the same-run baseline, machine info.

Rendered as Markdown, printed, and written into ``bench/README.md`` between
the ``results`` markers so that the prose around the table stays as written
(other benchmarks reuse :func:`write_readme` with their own markers, and the
formatting helpers).
The ratios are the point: on a noisy shared machine the absolute numbers of
two runs differ, while runyard's cost relative to a fork/exec measured
minutes earlier on the same machine is what a reader can compare.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from stats import Latency, Throughput

TIMES = "\N{MULTIPLICATION SIGN}"
START = "<!-- results:start -->"
END = "<!-- results:end -->"


@dataclass
class BaselineResult:
    latency: Latency
    throughput: dict[int, Throughput]


@dataclass
class RunyardResult:
    label: str
    exec_latency: Latency
    healthz_latency: Latency
    exec_throughput: dict[int, Throughput]
    healthz_throughput: Throughput
    error_samples: list[str] = field(default_factory=list)


@dataclass
class Report:
    command: str
    started: dt.datetime
    baseline: BaselineResult
    baseline_end: BaselineResult | None
    targets: list[RunyardResult]
    seconds: float
    runs: int


def ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def rate(value: float) -> str:
    return f"{value:,.0f}/s" if value >= 100 else f"{value:.1f}/s"


def ratio(value: float, base: float) -> str:
    if base <= 0:
        return "—"
    r = value / base
    return f"{r:.2f}{TIMES}" if r < 10 else f"{r:.1f}{TIMES}"


def cpu_cell(cpu: dict[str, float]) -> str:
    order = ["runyard", "postgres", "bench"]
    names = {"bench": "client", "runyard": "runyard", "postgres": "postgres"}
    parts = [f"{names[g]} {cpu[g]:.2f}" for g in order if g in cpu]
    return " + ".join(parts) if parts else "—"


def server_cpu(cpu: dict[str, float]) -> float:
    """CPU per op of the system under test (everything but the bench client)."""
    return sum(v for g, v in cpu.items() if g != "bench")


def machine() -> str:
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{usable} usable cores ({cpus} online, {model}), Linux {platform.release()},"
        f" Python {platform.python_version()}, load average at the end {load}"
    )


def revision() -> str:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=10, check=False
            )
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = " with uncommitted changes in the working tree" if git("status", "--porcelain") else ""
    return f"{head}{dirty}"


def render(report: Report) -> str:
    base = report.baseline
    targets = report.targets
    head = ["", "baseline: spawn `bash -c true`"]
    for t in targets:
        head += [f"runyard {t.label}", "÷ baseline"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---" + "|---:" * (len(head) - 1) + "|",
    ]

    def row(name: str, base_cell: str, cells: list[tuple[str, str]]) -> None:
        flat = [c for pair in cells for c in pair]
        lines.append("| " + " | ".join([name, base_cell, *flat]) + " |")

    bl = base.latency
    row(
        "exec latency p50, 1 client",
        ms(bl.p50_ms),
        [(ms(t.exec_latency.p50_ms), ratio(t.exec_latency.p50_ms, bl.p50_ms)) for t in targets],
    )
    row(
        "exec latency p95, 1 client",
        ms(bl.p95_ms),
        [(ms(t.exec_latency.p95_ms), ratio(t.exec_latency.p95_ms, bl.p95_ms)) for t in targets],
    )
    row(
        "`GET /healthz` p50 (HTTP floor)",
        "—",
        [
            (ms(t.healthz_latency.p50_ms), ratio(t.healthz_latency.p50_ms, bl.p50_ms))
            for t in targets
        ],
    )
    row(
        "`GET /healthz` p95",
        "—",
        [
            (ms(t.healthz_latency.p95_ms), ratio(t.healthz_latency.p95_ms, bl.p95_ms))
            for t in targets
        ],
    )
    for c, bt in sorted(base.throughput.items()):
        clients = "1 client" if c == 1 else f"{c} clients"
        row(
            f"exec throughput, {clients}",
            rate(bt.per_second),
            [
                (
                    rate(t.exec_throughput[c].per_second),
                    ratio(t.exec_throughput[c].per_second, bt.per_second),
                )
                for t in targets
            ],
        )
    top = max(base.throughput)
    bt_top = base.throughput[top]
    row(
        f"`GET /healthz` throughput, {top} clients",
        "—",
        [
            (
                rate(t.healthz_throughput.per_second),
                ratio(t.healthz_throughput.per_second, bt_top.per_second),
            )
            for t in targets
        ],
    )
    row(
        "CPU ms per exec, 1 client",
        cpu_cell(bl.cpu_ms_per_op),
        [
            (
                cpu_cell(t.exec_latency.cpu_ms_per_op),
                ratio(server_cpu(t.exec_latency.cpu_ms_per_op), bl.cpu_ms_per_op.get("bench", 0)),
            )
            for t in targets
        ],
    )
    row(
        f"CPU ms per exec, {top} clients",
        cpu_cell(bt_top.cpu_ms_per_op),
        [
            (
                cpu_cell(t.exec_throughput[top].cpu_ms_per_op),
                ratio(
                    server_cpu(t.exec_throughput[top].cpu_ms_per_op),
                    bt_top.cpu_ms_per_op.get("bench", 0),
                ),
            )
            for t in targets
        ],
    )
    base_errors = bl.errors + sum(t.errors for t in base.throughput.values())
    row(
        "failed calls (all phases)",
        str(base_errors),
        [(str(errors(t)), "") for t in targets],
    )

    out = [
        f"Run {report.started:%Y-%m-%d %H:%M} UTC on {machine()}; runyard {revision()}.",
        "",
        f"Command: `{report.command}`",
        f"({report.runs} sequential calls per latency row after a warm-up;"
        f" each throughput row is {report.seconds:g} s of closed-loop clients.)",
        "",
        *lines,
        "",
        "Ratios: latency and CPU rows are runyard ÷ baseline (how many times the"
        " cost of one fork/exec); throughput rows are runyard ÷ baseline at the"
        " same number of clients (the fraction of the spawn rate runyard reaches)."
        " `/healthz` rows are divided by the spawn row of the same kind."
        " CPU cells are CPU ms per completed call: `runyard` = the runyard"
        " processes and the shells they spawn, `postgres` = the PostgreSQL"
        " backends serving the run's database, `client` = this bench process"
        " (for the baseline: the bench and its `bash` children); the ratio"
        " compares the system under test (runyard + postgres) with the baseline.",
    ]
    if report.baseline_end is not None:
        end = report.baseline_end
        tops = end.throughput[top].per_second
        out += [
            "",
            "Baseline drift (re-measured after the runyard targets):"
            f" spawn p50 {ms(end.latency.p50_ms)}"
            f" ({pct(end.latency.p50_ms, bl.p50_ms)} vs the start),"
            f" p95 {ms(end.latency.p95_ms)} ({pct(end.latency.p95_ms, bl.p95_ms)}),"
            f" {rate(tops)} with {top} spawners ({pct(tops, bt_top.per_second)}).",
        ]
    samples = [s for t in targets for s in t.error_samples]
    if samples:
        out += ["", "First failures:", "", *[f"- {s}" for s in samples[:6]]]
    return "\n".join(out)


def errors(t: RunyardResult) -> int:
    phases = [t.exec_latency, t.healthz_latency, *t.exec_throughput.values(), t.healthz_throughput]
    return sum(p.errors for p in phases)


def pct(value: float, base: float) -> str:
    return f"{(value - base) / base * 100:+.0f} %" if base > 0 else "—"


def write_readme(path: Path, block: str, start: str = START, end: str = END) -> None:
    """Replace what is between the markers in ``path`` (append them if absent)."""
    text = path.read_text() if path.exists() else ""
    fresh = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + fresh + after
    else:
        text = text.rstrip() + ("\n\n" if text else "") + fresh + "\n"
    path.write_text(text)
