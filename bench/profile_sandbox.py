"""Profile where a ``bwrap`` sandbox start goes: substrate steps, launcher chain, bwrap options.

Why: ``bench_sandbox.py`` says *how much* a bwrap start costs relative to a
bare spawn; this says *where*, so that whoever changes
``runyard/sandbox`` knows which piece is worth it. Three views of the same
``true``, without changing runyard:

1. **Steps of ``BwrapSubstrate.run``** (cgroup + ``allowlist``): its pieces
   (cgroup create, egress proxy open, the supervised process tree, cgroup
   kill and remove, proxy close) wrapped with timers for the duration of
   the measurement.
2. **Ablations of the process tree**, in interleaved rounds: the launcher
   chain one exec at a time (``sh``, ``env -i``, ``setpriv``, joining the
   cgroup), bwrap with the production arguments
   (``BwrapSubstrate._bwrap_args``) minus one option group at a time, and
   the ``allowlist`` bridge with alternative readiness checks. Each row's
   p50 minus the production row's p50 is what that piece costs.
3. **Blocking syscalls** under ``strace -f -T`` for a few production runs:
   how long the kernel keeps the launcher in the first ``cgroup.procs``
   write, bwrap in ``umount2`` of the old root, in the namespace ``clone``,
   how many mounts and ``mountinfo`` reads bwrap does and how many programs
   one run execs. (strace slows everything down; only the in-kernel waits
   and the counts are meant to be read.)

    .venv/bin/python bench/profile_sandbox.py [--runs N] [--strace-runs N]

Needs root, bubblewrap, socat and strace; prints Markdown, writes nothing.
Everything lives under one temporary directory (also the mount root) and is
unmounted and removed at the end. Not a test: nothing here has a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from cpu import own_total
from load import Op, measure_interleaved, phase
from report import TIMES, machine, ms
from sandboxes import ALLOWLIST, Rig, cleanup, make_rig, private_root, run_prefix
from stats import percentile

from runyard.sandbox import bwrap, launch
from runyard.sandbox.base import supervise
from runyard.sandbox.cgroups import CgroupManager, Limits, RunCgroup
from runyard.sandbox.egress import EgressPolicy, EgressProxy, EgressSession

# How many values each bwrap option that runyard uses takes.
ARITY = {
    "--unshare-user": 0,
    "--disable-userns": 0,
    "--unshare-pid": 0,
    "--unshare-ipc": 0,
    "--unshare-uts": 0,
    "--unshare-cgroup-try": 0,
    "--unshare-net": 0,
    "--die-with-parent": 0,
    "--new-session": 0,
    "--clearenv": 0,
    "--hostname": 1,
    "--uid": 1,
    "--gid": 1,
    "--cap-drop": 1,
    "--tmpfs": 1,
    "--proc": 1,
    "--dev": 1,
    "--remount-ro": 1,
    "--chdir": 1,
    "--perms": 1,
    "--size": 1,
    "--ro-bind": 2,
    "--ro-bind-try": 2,
    "--bind": 2,
    "--symlink": 2,
    "--setenv": 2,
}

Group = tuple[str, tuple[str, ...]]

# The allowlist bridge, then alternatives. Each prints how many times its
# readiness loop went round (to stderr) before it execs the harness.
BRIDGE_NOW = bwrap._BRIDGE.replace('exec "$@"', 'echo "iterations=$i" >&2\nexec "$@"')
SOCAT = bwrap._BRIDGE.split("\n", 1)[0]  # "socat TCP-LISTEN:3128,… 2>/dev/null &"
BRIDGE_NO_WAIT = f'{SOCAT}\necho "iterations=0" >&2\nexec "$@"'
BRIDGE_BUILTIN = f"""{SOCAT}
i=0
while :; do
  while read -r _ l _ s _; do
    [ "$l" = 0100007F:0C38 ] && [ "$s" = 0A ] && break 2
  done < /proc/net/tcp
  i=$((i+1)); [ $i -gt 2000 ] && exit 125; sleep 0.001
done 2>/dev/null
echo "iterations=$i" >&2
exec "$@"
"""

BRIDGES = {
    "bridge": "… + allowlist bridge as shipped (grep + sleep loop)",
    "bridge-nowait": "… + bridge, socat forked, no readiness wait (lower bound)",
    "bridge-read": "… + bridge, readiness by `read` builtin (no grep)",
}


def groups(args: list[str]) -> list[Group]:
    """Split bwrap arguments into (option, values) groups."""
    out: list[Group] = []
    i = 0
    while i < len(args):
        opt = args[i]
        if opt not in ARITY:
            raise ValueError(f"unknown bwrap option {opt!r}: add it to ARITY")
        n = ARITY[opt]
        out.append((opt, tuple(args[i + 1 : i + 1 + n])))
        i += 1 + n
    return out


def flat(kept: list[Group]) -> list[str]:
    return [a for opt, vals in kept for a in (opt, *vals)]


def without(all_groups: list[Group], drop: Callable[[Group], bool]) -> list[str]:
    return flat([g for g in all_groups if not drop(g)])


def is_opt(*names: str) -> Callable[[Group], bool]:
    return lambda g: g[0] in names


def bind_of(src_prefix: str, opt: str) -> Callable[[Group], bool]:
    return lambda g: g[0] == opt and g[1][0].startswith(src_prefix)


# ---- 1. steps of BwrapSubstrate.run ----------------------------------------------------


_outer: contextvars.ContextVar[str] = contextvars.ContextVar("outer", default="")


class StepTimer:
    """Wraps the pieces of ``BwrapSubstrate.run`` with timers while active (times in ms)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self._current: dict[str, float] = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        self._current[name] += seconds * 1000

    def end_run(self, total_seconds: float) -> None:
        total = total_seconds * 1000
        inner = sum(self._current.values())
        for name, value in self._current.items():
            self.times[name].append(value)
        self.times["rest of run() (spec, memfd, threads, evidence)"].append(total - inner)
        self.times["total"].append(total)
        self._current.clear()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        patches: list[tuple[Any, str, Any]] = []
        timer = self

        def done(name: str, outer: str, elapsed: float) -> None:
            if outer:  # exclusive times: a nested call is taken out of its caller
                timer.add(f"{name} (inside {outer})", elapsed)
                timer.add(outer, -elapsed)
            else:
                timer.add(name, elapsed)

        def patch(owner: Any, attr: str, name: str, is_async: bool) -> None:
            original = getattr(owner, attr)
            patches.append((owner, attr, original))
            if is_async:

                async def wrapped_async(*a: Any, **kw: Any) -> Any:
                    outer, start = _outer.get(), time.perf_counter()
                    token = _outer.set(name)
                    try:
                        return await original(*a, **kw)
                    finally:
                        _outer.reset(token)
                        done(name, outer, time.perf_counter() - start)

                setattr(owner, attr, wrapped_async)
            else:

                def wrapped(*a: Any, **kw: Any) -> Any:
                    outer, start = _outer.get(), time.perf_counter()
                    token = _outer.set(name)
                    try:
                        return original(*a, **kw)
                    finally:
                        _outer.reset(token)
                        done(name, outer, time.perf_counter() - start)

                setattr(owner, attr, wrapped)

        patch(CgroupManager, "create", "cgroup create (4 v1 dirs + limits)", False)
        patch(RunCgroup, "kill", "cgroup kill (freeze, SIGKILL, thaw)", False)
        patch(RunCgroup, "remove", "cgroup remove (kill + rmdir)", False)
        patch(EgressProxy, "open", "egress proxy open (unix server)", True)
        patch(EgressSession, "close", "egress proxy close", True)
        patch(bwrap, "supervise", "supervise: launcher + bwrap + `true`", True)
        try:
            yield
        finally:
            for owner, attr, original in reversed(patches):
                setattr(owner, attr, original)


async def measure_steps(rig: Rig, runs: int, warmup: int) -> StepTimer:
    for _ in range(warmup):
        await rig.run()
    timer = StepTimer()
    with timer.active():
        for _ in range(runs):
            start = time.perf_counter()
            result = await rig.run()
            timer.end_run(time.perf_counter() - start)
            if result.exit_code != 0:
                raise RuntimeError(f"run failed: {result.stderr_tail[-300:]!r}")
    return timer


def render_steps(timer: StepTimer) -> list[str]:
    total = statistics.median(timer.times["total"])
    lines = [
        "| step of `BwrapSubstrate.run` (cgroup + allowlist) | p50 | mean | share of mean total |",
        "|---|---:|---:|---:|",
    ]
    mean_total = statistics.fmean(timer.times["total"])
    for name, values in sorted(timer.times.items(), key=lambda kv: -statistics.fmean(kv[1])):
        if name == "total":
            continue
        mean = statistics.fmean(values)
        lines.append(
            f"| {name} | {ms(statistics.median(values))} | {ms(mean)} |"
            f" {mean / mean_total * 100:.0f} % |"
        )
    lines.append(f"| **total** | {ms(total)} | {ms(mean_total)} | 100 % |")
    return lines


# ---- 2. ablations ----------------------------------------------------------------------


class Tree:
    """Runs one variant of the process tree through ``supervise`` and the production launcher."""

    def __init__(self, rig: Rig, uid: int | None) -> None:
        self.rig = rig
        self.uid = uid
        self.iterations: dict[str, list[int]] = defaultdict(list)
        self.failures: list[str] = []

    def op(
        self,
        label: str,
        command: list[str],
        *,
        bwrap_args: list[str] | None = None,
        launcher: bool = True,
        uid: bool = True,
        cgroup: RunCgroup | None = None,
    ) -> Op:
        async def op() -> bool:
            fd = -1
            argv = list(command)
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
            if bwrap_args is not None:
                fd = bwrap._memfd(bwrap_args)
                argv = ["bwrap", "--args", str(fd), "--", *argv]
            if launcher:
                procs = cgroup.procs_files if cgroup is not None else []
                argv, env = launch.launcher(argv, cgroup_procs=procs, uid=self.uid if uid else None)
            try:
                result = await supervise(
                    argv,
                    cwd=self.rig.run_dir,
                    env=env,
                    stdin=None,
                    timeout_seconds=60,
                    max_output_bytes=65_536,
                    cancel=asyncio.Event(),
                    pass_fds=(fd,) if fd >= 0 else (),
                )
            finally:
                if fd >= 0:
                    os.close(fd)
            err = result.stderr_tail.decode(errors="replace")
            found = re.search(r"iterations=(\d+)", err)
            if found:
                self.iterations[label].append(int(found.group(1)))
            if result.exit_code != 0 and len(self.failures) < 5:
                self.failures.append(f"{label}: exit {result.exit_code}: {err[-300:]}")
            return result.exit_code == 0

        return op


def ablation_ops(tree: Tree, cgroup: RunCgroup) -> tuple[dict[str, Op], str]:
    rig = tree.rig
    spec = rig.spec()
    sub = rig.substrate
    assert isinstance(sub, bwrap.BwrapSubstrate)
    full_args = sub._bwrap_args(spec, str(rig.home), str(rig.run_dir), str(sub._etc))[1:]
    g = groups(full_args)
    floor = flat(
        [
            x
            for x in g
            if x[0] in ("--unshare-user", "--symlink", "--clearenv", "--setenv")
            or (x[0] == "--tmpfs" and x[1] == ("/",))
            or (x[0] == "--ro-bind" and x[1][0] == "/usr")
        ]
    )
    host_etc = len([x for x in g if x[0] == "--ro-bind-try"])
    full = "bwrap, production arguments (deny_all)"
    true = ["true"]

    def bridge(label: str, script: str) -> Op:
        return tree.op(label, ["/bin/sh", "-c", script, "bridge", *true], bwrap_args=full_args)

    ops: dict[str, Op] = {
        "`true` (supervise only)": tree.op("true", true, launcher=False),
        "sh launcher → `env -i` → `true` (no uid, no cgroup)": tree.op("sh", true, uid=False),
        "sh → `env -i` → `setpriv` → `true`": tree.op("setpriv", true),
        "sh (joins the cgroup) → `env -i` → `setpriv` → `true`": tree.op(
            "cgroup", true, cgroup=cgroup
        ),
        "bwrap floor: user + mount ns, tmpfs `/`, `/usr`": tree.op("floor", true, bwrap_args=floor),
        full: tree.op(full, true, bwrap_args=full_args),
        "… without `--unshare-net`": tree.op(
            "net", true, bwrap_args=without(g, is_opt("--unshare-net"))
        ),
        "… without `--unshare-ipc`": tree.op(
            "ipc", true, bwrap_args=without(g, is_opt("--unshare-ipc"))
        ),
        "… without `--unshare-uts --hostname`": tree.op(
            "uts", true, bwrap_args=without(g, is_opt("--unshare-uts", "--hostname"))
        ),
        "… without `--unshare-cgroup-try`": tree.op(
            "cgns", true, bwrap_args=without(g, is_opt("--unshare-cgroup-try"))
        ),
        "… without `--unshare-pid` (and `--proc`)": tree.op(
            "pid", true, bwrap_args=without(g, is_opt("--unshare-pid", "--proc"))
        ),
        "… without `--disable-userns`": tree.op(
            "userns", true, bwrap_args=without(g, is_opt("--disable-userns"))
        ),
        f"… without the {host_etc} `--ro-bind-try /etc/*`": tree.op(
            "etc", true, bwrap_args=without(g, is_opt("--ro-bind-try"))
        ),
        "… without `--dev /dev`": tree.op("dev", true, bwrap_args=without(g, is_opt("--dev"))),
        "… without `--remount-ro /`": tree.op(
            "remount", true, bwrap_args=without(g, is_opt("--remount-ro"))
        ),
        "… running `socat -V` instead of `true`": tree.op(
            "socat", ["socat", "-V"], bwrap_args=full_args
        ),
        BRIDGES["bridge"]: bridge("bridge", BRIDGE_NOW),
        BRIDGES["bridge-nowait"]: bridge("bridge-nowait", BRIDGE_NO_WAIT),
        BRIDGES["bridge-read"]: bridge("bridge-read", BRIDGE_BUILTIN),
    }
    return ops, full


def render_ablation(
    got: dict[str, Any], full: str, tree: Tree, cpu_s: dict[str, float]
) -> list[str]:
    ref = percentile(got[full].seconds, 50) * 1000
    lines = [
        "| process tree | p50 | p95 | p50 \N{MINUS SIGN} production bwrap | CPU ms"
        " | bridge loop rounds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rounds = {BRIDGES[k]: v for k, v in tree.iterations.items() if k in BRIDGES}
    for name, samples in got.items():
        if not samples.seconds:
            lines.append(f"| {name} | failed | | | | |")
            continue
        p50 = percentile(samples.seconds, 50) * 1000
        p95 = percentile(samples.seconds, 95) * 1000
        delta = "" if name == full else f"{p50 - ref:+.1f} ms"
        loops = rounds.get(name)
        loop_cell = f"mean {statistics.fmean(loops):.1f}, max {max(loops)}" if loops else ""
        cpu_ms = cpu_s[name] * 1000 / max(1, len(samples.seconds) + samples.errors)
        lines.append(f"| {name} | {ms(p50)} | {ms(p95)} | {delta} | {cpu_ms:.2f} | {loop_cell} |")
    return lines


# ---- 3. blocking syscalls under strace --------------------------------------------------

LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\w+).*<([\d.]+)>$")


def joined_lines(text: str) -> Iterator[str]:
    """strace -f lines with ``<unfinished ...>`` and ``<... resumed>`` halves put back together."""
    pending: dict[str, str] = {}
    for raw in text.splitlines():
        pid, _, rest = raw.strip().partition(" ")
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending[pid] = rest.removesuffix("<unfinished ...>").rstrip()
            continue
        resumed = re.match(r"<\.\.\. \w+ resumed>\s?(.*)$", rest)
        if resumed and pid in pending:
            rest = pending.pop(pid) + resumed.group(1)
        yield f"{pid} {rest}"


def parse_strace(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = {
        "cgroup_first_write": None,
        "cgroup_writes": [],
        "umount2": [],
        "clone_ns": None,
        "mounts": 0,
        "mount_time": 0.0,
        "mountinfo_reads": 0,
        "execs": [],
        "unshare": [],
    }
    for line in joined_lines(path.read_text(errors="replace")):
        m = LINE.match(line)
        if not m:
            continue
        _, call, args, result, dur_s = m.groups()
        dur = float(dur_s) * 1000
        if call == "write" and "cgroup.procs" in args:
            found["cgroup_writes"].append(dur)
            if found["cgroup_first_write"] is None:
                found["cgroup_first_write"] = dur
        elif call == "umount2":
            found["umount2"].append(dur)
        elif call in ("clone", "clone3") and "CLONE_NEWNS" in args:
            found["clone_ns"] = dur
        elif call == "mount":
            found["mounts"] += 1
            found["mount_time"] += dur
        elif call == "openat" and "mountinfo" in args:
            found["mountinfo_reads"] += 1
        elif call == "execve" and result == "0":
            found["execs"].append(args.split('"')[1].rsplit("/", 1)[-1])
        elif call == "unshare":
            found["unshare"].append(dur)
    return found


async def measure_strace(rig: Rig, runs: int, out_dir: Path) -> list[dict[str, Any]]:
    original = bwrap.supervise
    traces: list[Path] = []

    async def traced(argv: list[str], **kw: Any) -> Any:
        path = out_dir / f"trace-{len(traces)}.txt"
        traces.append(path)
        strace = ["strace", "-f", "-T", "-y", "-qq", "-o", str(path)]
        strace += ["-e", "trace=write,umount2,clone,clone3,unshare,mount,openat,execve"]
        return await original([*strace, *argv], **kw)

    bwrap.supervise = traced  # type: ignore[assignment]
    try:
        for _ in range(runs):
            result = await rig.run()
            if result.exit_code != 0:
                raise RuntimeError(f"traced run failed: {result.stderr_tail[-300:]!r}")
    finally:
        bwrap.supervise = original  # type: ignore[assignment]
    return [parse_strace(p) for p in traces]


def render_strace(found: list[dict[str, Any]]) -> list[str]:
    def med(values: list[float]) -> str:
        return ms(statistics.median(values)) if values else "—"

    first = [f["cgroup_first_write"] for f in found if f["cgroup_first_write"] is not None]
    rest = [w for f in found for w in f["cgroup_writes"][1:]]
    oldroot = [f["umount2"][0] for f in found if f["umount2"]]
    clone = [f["clone_ns"] for f in found if f["clone_ns"] is not None]
    execs = found[0]["execs"]
    counts: dict[str, int] = defaultdict(int)
    for f in found:
        for e in f["execs"]:
            counts[e] += 1
    per_run = ", ".join(f"{name} {TIMES}{n / len(found):.1f}" for name, n in sorted(counts.items()))
    return [
        "| in-kernel wait (strace -T) | median over runs |",
        "|---|---:|",
        f"| first `write` to a `cgroup.procs` (launcher joins the memory cgroup) | {med(first)} |",
        f"| the other three `cgroup.procs` writes | {med(rest)} each |",
        f"| `umount2(oldroot, MNT_DETACH)` in bwrap | {med(oldroot)} |",
        f"| `clone(CLONE_NEWNS\\|NEWUSER\\|NEWPID\\|NEWNET\\|…)` | {med(clone)} |",
        f"| `mount` calls per run (count, summed time) | {found[0]['mounts']},"
        f" {med([f['mount_time'] for f in found])} |",
        f"| `/proc/self/mountinfo` opened by bwrap per run | {found[0]['mountinfo_reads']} |",
        "",
        f"Programs exec'd per run (mean over {len(found)} runs): {per_run}.",
        f"First run's exec order: {' → '.join(execs)}.",
    ]


# ---- main --------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=60, help="rounds per measurement")
    parser.add_argument("--strace-runs", type=int, default=10, help="runs traced with strace")
    args = parser.parse_args(argv)
    args.warmup = 5
    return args


async def measure_ablation(rig: Rig, args: argparse.Namespace) -> list[str]:
    sub = rig.substrate
    assert isinstance(sub, bwrap.BwrapSubstrate) and sub._cgroups is not None
    uid = sub.owner_of(rig.agent_id)
    cgroup = sub._cgroups.create(f"{rig.run_prefix}-ablation", Limits(2048 * 1024**2, 512, 1.0))
    session = await EgressProxy().open(
        rig.run_dir / "egress.sock", EgressPolicy(allow_all=False), owner=uid
    )
    try:
        tree = Tree(rig, uid)
        ops, full = ablation_ops(tree, cgroup)
        got = await measure_interleaved(ops, args.runs, args.warmup, own_total)
    finally:
        await session.close()
        (rig.run_dir / "egress.sock").unlink(missing_ok=True)
        cgroup.remove()
    cpu = {name: s.cpu_seconds for name, s in got.items()}
    lines = render_ablation(got, full, tree, cpu)
    if tree.failures:
        lines += ["", "Failures:", *[f"- {f}" for f in tree.failures]]
    return lines


def run(args: argparse.Namespace) -> list[str]:
    prefix = run_prefix()
    out: list[str] = [f"Profile on {machine()}.", ""]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="runyard-profile-"))
        root = private_root(Path(tmp))
        stack.callback(lambda: out.extend(cleanup(root, [prefix])))
        rig = make_rig(
            root, "allow", "bwrap allowlist", substrate="bwrap", runtime_policy=ALLOWLIST,
            run_prefix=prefix,
        )  # fmt: skip
        stack.callback(rig.substrate.shutdown)
        timer = phase(
            "steps of BwrapSubstrate.run", lambda: measure_steps(rig, args.runs, args.warmup)
        )
        out += ["### Steps of one `BwrapSubstrate.run` (cgroup + allowlist)", ""]
        out += render_steps(timer)
        ablation = phase("ablations (interleaved)", lambda: measure_ablation(rig, args))
        out += ["", "### Ablations of the process tree (interleaved rounds)", "", *ablation]
        if args.strace_runs > 0 and shutil.which("strace"):
            found = phase("strace", lambda: measure_strace(rig, args.strace_runs, Path(tmp)))
            out += ["", "### Blocking syscalls (strace -f -T, cgroup + allowlist)", ""]
            out += render_strace(found)
    return out


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        lines = run(args)
    except KeyboardInterrupt:
        print("interrupted; everything this run started has been stopped", file=sys.stderr)
        return 130
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
