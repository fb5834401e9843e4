"""Benchmark what a sandbox costs to start, as ratios to a spawn baseline measured in the same run.

Why: every run pays the sandbox's start-up before its first instruction, and
the design's per-substrate numbers are only useful if they can be checked
again on the next machine. One run measures ``true``:

1. **baseline**: spawned directly, with ``asyncio.create_subprocess_exec`` and
   through runyard's own ``supervise()`` (the ratio denominator), plus
   ``bash --noprofile --norc -c true`` (what the ``shell`` harness adds);
2. **substrate**: ``runyard.sandbox`` called directly, no HTTP: ``process``,
   ``bwrap`` without cgroups, ``bwrap`` with cgroups, and ``bwrap`` with
   cgroups under ``networkPolicy.mode = allowlist`` (egress proxy + bridge);
3. **end to end**: synchronous ``POST /v1/agents/{id}/exec`` of ``true``
   against four ``runyard up`` processes (process; bwrap with cgroups off;
   bwrap; bwrap with an allowlist agent), each with its environment ready;

rows of a level are measured in interleaved rounds so that the machine's
drift spreads over all of them, then the table goes into ``bench/README.md``
between the ``sandbox`` markers.

    .venv/bin/python bench/bench_sandbox.py [--quick] [--runs N] [--no-write]

Needs root (cgroups, loop-mounted homes, a per-agent uid), bubblewrap and
socat. Everything lives under one temporary directory that is also the
mount root; homes are unmounted and leftover cgroups removed at the end.
Not a test: nothing here has a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import cpu
from api import Runtime
from load import Op, Samples, measure_interleaved, measure_latency, phase, spawner
from report import write_readme
from report_sandbox import END, START, Row, SandboxReport, render_sandbox
from sandboxes import ALLOWLIST, Rig, cleanup, make_rig, private_root, run_prefix
from servers import Target, start_sqlite, tail, wait_started
from stats import Latency

from runyard.sandbox.base import supervise
from runyard.sandbox.cgroups import CgroupManager
from runyard.settings import Settings
from runyard.worker.outcomes import BASE_ENV

HERE = Path(__file__).resolve().parent
BASELINE = "`true`, runyard's `supervise()`"
IDLE_SECONDS = 3.0
WORKER_SLOTS = 8

SUBSTRATES = (  # key, label, build_substrate settings, runtime policy
    ("process", "`process` substrate", {"substrate": "process"}, None),
    ("bwrap-nocg", "`bwrap`, cgroups off", {"substrate": "bwrap", "cgroups": False}, None),
    ("bwrap", "`bwrap` + cgroup", {"substrate": "bwrap"}, None),
    ("bwrap-allow", "`bwrap` + cgroup + `allowlist`", {"substrate": "bwrap"}, ALLOWLIST),
)

END_TO_END = (  # key, label, RUNYARD_* environment of `runyard up`, the agent's runtime policy
    ("process", "`RUNYARD_SANDBOX=process`", {"RUNYARD_SANDBOX": "process"}, None),
    (
        "bwrap-nocg",
        "`RUNYARD_SANDBOX=bwrap RUNYARD_SANDBOX_CGROUPS=off`",
        {"RUNYARD_SANDBOX": "bwrap", "RUNYARD_SANDBOX_CGROUPS": "off"},
        None,
    ),
    ("bwrap", "`RUNYARD_SANDBOX=bwrap`", {"RUNYARD_SANDBOX": "bwrap"}, None),
    (
        "bwrap-allow",
        "`RUNYARD_SANDBOX=bwrap`, agent with `allowlist`",
        {"RUNYARD_SANDBOX": "bwrap"},
        ALLOWLIST,
    ),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--runs", type=int, help="measured rounds per level")
    parser.add_argument("--no-write", action="store_true", help="print only; leave README alone")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 30 if args.quick else 200
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    args.warmup = 3 if args.quick else 10
    return args


def supervised(argv: list[str], cwd: Path) -> Op:
    """Spawn ``argv`` the way every substrate does: runyard's ``supervise()``."""

    async def op() -> bool:
        result = await supervise(
            argv,
            cwd=cwd,
            env=dict(BASE_ENV),
            stdin=None,
            timeout_seconds=60,
            max_output_bytes=Settings().max_output_bytes,
            cancel=asyncio.Event(),
        )
        return result.exit_code == 0

    return op


def baseline_ops(cwd: Path) -> dict[str, Op]:
    return {
        "`true`, `asyncio.create_subprocess_exec`": spawner("true"),
        BASELINE: supervised(["true"], cwd),
        "`bash --noprofile --norc -c true`, `supervise()`": supervised(
            ["bash", "--noprofile", "--norc", "-c", "true"], cwd
        ),
    }


def latency_of(got: Samples) -> Latency:
    return Latency.of(got.seconds, got.errors, {"bench": got.cpu_seconds})


async def measure_local(cwd: Path, rigs: list[Rig], args: argparse.Namespace) -> list[Row]:
    """Baseline and substrate rows, all in the same interleaved rounds."""
    base = baseline_ops(cwd)
    ops = {**base, **{rig.label: rig.op() for rig in rigs}}
    got = await measure_interleaved(ops, args.runs, args.warmup, cpu.own_total)
    rows = [
        Row("baseline", name, latency_of(got[name]), reference=name == BASELINE) for name in base
    ]
    rows += [
        Row("substrate", rig.label, latency_of(got[rig.label]), reference=rig is rigs[0])
        for rig in rigs
    ]
    return rows


async def measure_baseline_again(cwd: Path, args: argparse.Namespace) -> Latency:
    got = await measure_interleaved(baseline_ops(cwd), args.runs, args.warmup, cpu.own_total)
    return latency_of(got[BASELINE])


async def measure_end_to_end(
    targets: list[tuple[Target, dict[str, object] | None]], args: argparse.Namespace
) -> tuple[list[Row], list[str], list[str]]:
    """Agents ready and admitted on every target, then interleaved rounds of ``/exec``."""
    runtimes: list[Runtime] = []
    try:
        for target, policy in targets:
            rt = Runtime(target)
            runtimes.append(rt)
            await rt.create_agent(1, policy)
        for rt in runtimes:
            await rt.wait_ready()
            await rt.admit()
        first = runtimes[0]
        floor_watch = cpu.CpuWatch({"bench": cpu.own, "runyard": first.target.meters["runyard"]})
        healthz = await measure_latency(
            first.healthz_op(first.client()), args.runs, args.warmup, floor_watch
        )
        watch = cpu.CpuWatch({rt.target.label: rt.target.meters["runyard"] for rt in runtimes})
        before = watch.snapshot()
        await asyncio.sleep(IDLE_SECONDS)
        idle = watch.since(before)
        ops = {rt.target.label: rt.exec_op(rt.client()) for rt in runtimes}
        for _ in range(args.warmup):
            for op in ops.values():
                await op()
        before = watch.snapshot()
        started = time.perf_counter()
        got = await measure_interleaved(ops, args.runs, 0, cpu.own_total)
        wall = time.perf_counter() - started
        used = watch.since(before)
        for rt in runtimes:
            rt.target.check_alive()
    finally:
        for rt in runtimes:
            await rt.aclose()
    rows = [
        Row(
            "end to end",
            f"`GET /healthz` ({first.target.label}; the HTTP floor)",
            healthz,
            server_cpu_ms=healthz.cpu_ms_per_op.get("runyard", 0.0),
        )
    ]
    idle_cells = []
    for i, rt in enumerate(runtimes):
        label = rt.target.label
        calls = len(got[label].seconds) + got[label].errors
        rows.append(
            Row(
                "end to end",
                f"`POST …/exec`, {label}",
                latency_of(got[label]),
                server_cpu_ms=used[label] * 1000 / calls,
                reference=i == 0,
            )
        )
        idle_ms_s = idle[label] * 1000 / IDLE_SECONDS
        idle_cells.append(f"{idle_ms_s:.1f} ms/s ({idle_ms_s * wall / calls:.2f} ms per exec)")
    idle_note = (
        f"Idle CPU of the four `runyard up` in table order, measured for {IDLE_SECONDS:g} s"
        " before the rounds (at 10 ms tick resolution) and part of their end-to-end CPU above:"
        f" {', '.join(idle_cells)}."
    )
    failures = [f for rt in runtimes for f in rt.failures]
    return rows, [idle_note], failures


def environment() -> str:
    try:
        version = subprocess.run(
            ["bwrap", "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        version = "bubblewrap missing"
    cgroups = f"cgroup v{CgroupManager().version}"
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    return (
        f"Sandbox host: {version}, {cgroups}, running as {who}: under bwrap every run drops"
        " to a per-agent uid (`setpriv`) and agent homes are loop-mounted ext4 images"
        " (the defaults); `runyard up` on SQLite with"
        f" `RUNYARD_WORKER_SLOTS={WORKER_SLOTS}`, mount root and data dirs in a temporary"
        " directory."
    )


def start_targets(stack: contextlib.ExitStack, root: Path) -> list[tuple[Target, dict | None]]:
    """Start every ``runyard up`` at once, then wait for all of them."""
    started = []
    for key, label, settings, policy in END_TO_END:
        env = {**settings, "RUNYARD_MOUNT_ROOT": str(root / "mnt")}
        target = start_sqlite(
            stack, root, WORKER_SLOTS, label=label, dirname=f"up-{key}", env=env, wait=False
        )
        started.append((target, policy))
    for target, _ in started:
        wait_started(target)
    return started


def run(args: argparse.Namespace, command: str) -> SandboxReport:
    started = dt.datetime.now(dt.UTC)
    prefix = run_prefix()
    notes: list[str] = []
    failures: list[str] = []
    with contextlib.ExitStack() as outer:
        tmp = outer.enter_context(tempfile.TemporaryDirectory(prefix="runyard-bench-sandbox-"))
        root = private_root(Path(tmp))
        outer.callback(lambda: notes.extend(cleanup(root, [prefix])))
        cwd = root / "cwd"
        cwd.mkdir()

        print("• substrates: preparing homes", flush=True)
        rigs: list[Rig] = []
        with contextlib.ExitStack() as local:
            for key, label, options, policy in SUBSTRATES:
                rig = make_rig(
                    root, key, label, runtime_policy=policy, run_prefix=prefix, **options
                )
                local.callback(rig.substrate.shutdown)
                rigs.append(rig)
            rows = phase(
                "baseline + substrates (interleaved)", lambda: measure_local(cwd, rigs, args)
            )
            failures += [f for rig in rigs for f in rig.failures]

        with contextlib.ExitStack() as e2e:
            print("• end to end: starting four `runyard up`", flush=True)
            targets = start_targets(e2e, root)
            try:
                more, e2e_notes, e2e_failures = phase(
                    "end to end (interleaved)", lambda: measure_end_to_end(targets, args)
                )
            except Exception:
                for target, _ in targets:
                    for proc in target.procs:
                        print(f"--- {target.label}: tail of {proc.name}.log ---", file=sys.stderr)
                        print(tail(proc.log, 40), file=sys.stderr)
                raise
            rows += more
            notes += e2e_notes
            failures += e2e_failures
        left = cleanup(root, [prefix])
        if left:  # runyard up does not unmount its agents' homes when it stops
            notes.append(f"After the `runyard up` processes stopped: {'; '.join(left)}.")

        again = phase("baseline again (drift check)", lambda: measure_baseline_again(cwd, args))
    first = next(r.latency for r in rows if r.label == BASELINE)
    return SandboxReport(
        command=command,
        started=started,
        runs=args.runs,
        baseline_label=BASELINE,
        rows=rows,
        environment=environment(),
        drift=(first, again),
        notes=notes,
        failures=failures,
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/bench_sandbox.py", *argv])
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        report = run(args, command)
    except KeyboardInterrupt:
        print("interrupted; every process this run started has been stopped", file=sys.stderr)
        return 130
    table = render_sandbox(report)
    print()
    print(table)
    if not args.no_write:
        write_readme(HERE / "README.md", table, START, END)
        print(f"\nwritten to {HERE / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
