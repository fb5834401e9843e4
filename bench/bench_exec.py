"""Benchmark synchronous ``POST /v1/agents/{id}/exec`` against a same-run spawn baseline.

Why: the cost runyard adds on top of running a process is what users pay on
every synchronous call, and on the noisy shared machines this runs on only a
comparison made in the same run means anything. So one run measures:

1. the baseline: ``bash -c true`` spawned directly (latency, spawns/s);
2. ``runyard up`` on SQLite (API + worker in one process);
3. ``runyard serve`` + ``runyard worker`` on a fresh PostgreSQL database;

each with exec latency (1 client), exec throughput (N clients) and a
``GET /healthz`` reference, then writes the table into ``bench/README.md``.

    .venv/bin/python bench/bench_exec.py [--quick] [--runs N] [--concurrency 1,4,8]

Not a test: nothing here has a threshold.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

import cpu
from api import Runtime
from load import measure_latency, measure_throughput, phase, spawn_true
from report import BaselineResult, Report, RunyardResult, render, write_readme
from servers import Target, start_postgres, start_sqlite, tail

HERE = Path(__file__).resolve().parent
MAX_AGENT_CONCURRENCY = 64  # runtimePolicy.maxConcurrentRuns is at most 64


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="few calls, short windows")
    parser.add_argument("--runs", type=int, help="sequential calls per latency row")
    parser.add_argument("--seconds", type=float, help="length of each throughput window")
    parser.add_argument("--concurrency", default="1,4,8", help="client counts, e.g. 1,4,8")
    parser.add_argument(
        "--backends", default="sqlite,postgres", help="which runyard targets (sqlite,postgres)"
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL used to create and drop the throwaway database",
    )
    parser.add_argument(
        "--compare-rev",
        help="also measure runyard up (SQLite) as of this git revision, in the same run",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave README alone")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 30 if args.quick else 200
    if args.seconds is None:
        args.seconds = 1.5 if args.quick else 4.0
    args.warmup = 5 if args.quick else 20
    try:
        levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    except ValueError:
        parser.error("--concurrency must be comma-separated integers")
    if not levels or levels[0] < 1 or levels[-1] > MAX_AGENT_CONCURRENCY:
        parser.error(f"--concurrency levels must be between 1 and {MAX_AGENT_CONCURRENCY}")
    args.levels = levels
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not set(args.backends) <= {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and/or postgres")
    if args.runs < 2 or args.seconds <= 0:
        parser.error("--runs must be at least 2 and --seconds positive")
    return args


async def measure_baseline(args: argparse.Namespace) -> BaselineResult:
    watch = cpu.CpuWatch({"bench": cpu.own})
    latency = await measure_latency(spawn_true, args.runs, args.warmup, watch)
    throughput = {}
    for c in args.levels:
        throughput[c] = await measure_throughput([spawn_true] * c, args.seconds, watch)
    return BaselineResult(latency=latency, throughput=throughput)


async def measure_target(target: Target, args: argparse.Namespace) -> RunyardResult:
    rt = Runtime(target)
    watch = cpu.CpuWatch({"bench": cpu.own, **target.meters})
    try:
        await rt.create_agent(max(args.levels))
        await rt.admit()
        solo = rt.client()
        healthz = await measure_latency(rt.healthz_op(solo), args.runs, args.warmup, watch)
        exec_latency = await measure_latency(rt.exec_op(solo), args.runs, args.warmup, watch)
        exec_tp = {}
        for c in args.levels:
            ops = [rt.exec_op(rt.client()) for _ in range(c)]
            for op in ops:  # open every connection before the window starts
                await op()
            exec_tp[c] = await measure_throughput(ops, args.seconds, watch)
            target.check_alive()
        top = max(args.levels)
        healthz_ops = [rt.healthz_op(rt.client()) for _ in range(top)]
        healthz_tp = await measure_throughput(healthz_ops, args.seconds, watch)
    finally:
        await rt.aclose()
    return RunyardResult(
        label=target.label,
        exec_latency=exec_latency,
        healthz_latency=healthz,
        exec_throughput=exec_tp,
        healthz_throughput=healthz_tp,
        error_samples=rt.failures,
    )


def run(args: argparse.Namespace, command: str) -> Report:
    started = dt.datetime.now(dt.UTC)
    baseline = phase("baseline: bash -c true", lambda: measure_baseline(args))
    targets: list[RunyardResult] = []
    slots = max(8, *args.levels)
    starters = {
        "sqlite": ("runyard up (SQLite)", lambda stack, root: start_sqlite(stack, root, slots)),
        "postgres": (
            "runyard serve + worker (PostgreSQL)",
            lambda stack, root: start_postgres(stack, root, args.postgres_url, slots),
        ),
    }
    order = list(args.backends)
    if args.compare_rev:
        rev = args.compare_rev

        def start_rev(stack: contextlib.ExitStack, root: Path) -> Target:
            src = export_source(rev, root / "rev")
            return start_sqlite(
                stack,
                root,
                slots,
                label=f"SQLite @ {rev}",
                dirname="sqlite-rev",
                env={"PYTHONPATH": str(src)},
            )

        starters["rev"] = (f"runyard up (SQLite) @ {rev}", start_rev)
        order.append("rev")
    for backend in order:
        title, start = starters[backend]
        with contextlib.ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="runyard-bench-")))
            print(f"• {title}: starting", flush=True)
            target = start(stack, root)
            try:
                result = phase(f"{title}: measuring", lambda t=target: measure_target(t, args))
            except Exception:
                for proc in target.procs:
                    print(f"--- tail of {proc.name}.log ---\n{tail(proc.log, 40)}", file=sys.stderr)
                raise
            targets.append(result)
            print(f"• {title}: stopping", flush=True)
    baseline_end = phase("baseline again (drift check)", lambda: measure_baseline(args))
    return Report(
        command=command,
        started=started,
        baseline=baseline,
        baseline_end=baseline_end,
        targets=targets,
        seconds=args.seconds,
        runs=args.runs,
    )


def export_source(rev: str, into: Path) -> Path:
    """``src/`` of this repository as of ``rev``, unpacked under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", rev, "src"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/bench_exec.py", *argv])
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    try:
        report = run(args, command)
    except KeyboardInterrupt:
        print("interrupted; every process this run started has been stopped", file=sys.stderr)
        return 130
    table = render(report)
    print()
    print(table)
    if not args.no_write:
        write_readme(HERE / "README.md", table)
        print(f"\nwritten to {HERE / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
