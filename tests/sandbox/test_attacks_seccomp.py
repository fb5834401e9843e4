"""Attacks on the kernel surface that the seccomp filter closes; each must fail.

One run tries every denied call class through raw ``syscall()`` (ctypes) —
the kernel keyring, ``bpf``, ``perf_event_open``, ``userfaultfd``, file
handles, ``io_uring``, mounts old and new, nested user namespaces through
``unshare``, ``clone`` and ``clone3``, ``setns``, terminal injection with
``TIOCSTI`` and ``TIOCLINUX`` on a pty made the controlling terminal, and
``personality(READ_IMPLIES_EXEC)`` — including the high-bit spellings the
kernel truncates away, and must see the filter's errno for each. The same
run then does ordinary work (git, Python with threads, asyncio and
subprocesses, bash pipelines, socat, node, pip) that must still succeed:
the filter takes only what no workload needs. A syscall through the i386
ABI (``int $0x80``) must kill the process. The stored evidence records the
filter.

Where the kernel alone would answer differently (``ENOSPC`` for a nested
user namespace under ``--disable-userns``, success for ``keyctl``,
``userfaultfd``, ``io_uring_setup``, ``TIOCSTI`` on one's own terminal,
``personality``), the expected errno proves that the filter answered.
"""

from __future__ import annotations

import ctypes
import json
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.conftest import Agent, Battery

# (attack id, the syscall the probe calls, the errno the filter returns)
DENIED = [
    ("keyctl", "keyctl", "EPERM"),
    ("add_key", "add_key", "EPERM"),
    ("bpf", "bpf", "EPERM"),
    ("perf_event_open", "perf_event_open", "EPERM"),
    ("userfaultfd", "userfaultfd", "EPERM"),
    ("open_by_handle_at", "open_by_handle_at", "EPERM"),
    ("io_uring_setup", "io_uring_setup", "ENOSYS"),
    ("mount", "mount", "EPERM"),
    ("fsopen", "fsopen", "EPERM"),
    ("unshare(CLONE_NEWUSER)", "unshare", "EPERM"),
    ("clone(CLONE_NEWUSER)", "clone", "EPERM"),
    ("clone3", "clone3", "ENOSYS"),
    ("setns", "setns", "EPERM"),
    ("ioctl(TIOCSTI)", "ioctl", "EPERM"),
    ("ioctl(TIOCSTI | 1 << 32)", "ioctl", "EPERM"),
    ("ioctl(TIOCLINUX)", "ioctl", "EPERM"),
    ("personality(READ_IMPLIES_EXEC)", "personality", "EPERM"),
    ("personality(READ_IMPLIES_EXEC | 1 << 32)", "personality", "EPERM"),
]

PROBE = r"""
import ctypes, errno, fcntl, json, os, sys, termios
NR = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, SIGCHLD, TIOCSTI, TIOCLINUX = 0x10000000, 17, 0x5412, 0x541C

def arg(a):
    return ctypes.c_long(a) if isinstance(a, int) else a

def call(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(NR[name]), *map(arg, args))
    if r == 0 and name in ("clone", "clone3"):
        os._exit(0)  # a child: only if the filter let it through
    return errno.errorcode[ctypes.get_errno()] if r == -1 else f"ok:{r}"

def on_own_tty(probe):
    # A pty made this child's controlling terminal: without the filter TIOCSTI works here.
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        termios.tcgetattr(slave)  # ordinary terminal ioctls still work
        os.write(wr, probe(slave).encode())
        os._exit(0)
    os.close(wr)
    os.waitpid(pid, 0)
    return os.read(rd, 100).decode()

buf = ctypes.create_string_buffer(256)
ch = ctypes.c_char(b"x")
uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
out = {
    "keyctl": call("keyctl", 0, -3, 1),
    "add_key": call("add_key", b"user", b"runyard", b"x", 1, -2),
    "bpf": call("bpf", 0, buf, 72),
    "perf_event_open": call("perf_event_open", buf, 0, -1, -1, 0),
    "userfaultfd": call("userfaultfd", 1),
    "open_by_handle_at": call("open_by_handle_at", -100, buf, 0),
    "io_uring_setup": call("io_uring_setup", 1, buf),
    "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "fsopen": call("fsopen", b"tmpfs", 0),
    "unshare(CLONE_NEWUSER)": call("unshare", CLONE_NEWUSER),
    "clone(CLONE_NEWUSER)": call("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "clone3": call("clone3", None, 0),
    "setns": call("setns", uts, 0),
    "ioctl(TIOCSTI)": on_own_tty(lambda fd: call("ioctl", fd, TIOCSTI, ctypes.byref(ch))),
    "ioctl(TIOCSTI | 1 << 32)": on_own_tty(
        lambda fd: call("ioctl", fd, TIOCSTI | 1 << 32, ctypes.byref(ch))
    ),
    "ioctl(TIOCLINUX)": on_own_tty(lambda fd: call("ioctl", fd, TIOCLINUX, buf)),
    "personality(READ_IMPLIES_EXEC)": call("personality", 0x0400000),
    "personality(READ_IMPLIES_EXEC | 1 << 32)": call("personality", 0x0400000 | 1 << 32),
    # the harmless ones stay: the query and PER_LINUX
    "personality(query)": call("personality", 0xFFFFFFFF),
    "personality(PER_LINUX)": call("personality", 0),
}
print("PROBES " + json.dumps(out))
"""

WORKLOAD = r"""
set -euo pipefail
cd "$(mktemp -d -p ~)"
git init -q repo && cd repo
echo hello > f && git add f
git -c user.name=a -c user.email=a@example.com commit -q -m one
echo "git $(git log --oneline | wc -l) $(git rev-parse --is-inside-work-tree)"
python3 - <<'EOF'
import asyncio, concurrent.futures, subprocess, threading
async def main():
    p = await asyncio.create_subprocess_exec("echo", "sub", stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    return out.decode().strip()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    squares = sum(pool.map(lambda n: n * n, range(10)))
print("python", asyncio.run(main()), squares, subprocess.check_output(["true"]) == b"",
      threading.active_count())
EOF
echo "bash $(seq 1000 | sort -rn | head -1) $( (echo a; echo b) | paste -sd,)"
socat -u TCP-LISTEN:9999,bind=127.0.0.1,reuseaddr OPEN:got,creat &
for i in $(seq 100); do grep -qi ':270F 00000000:0000 0A' /proc/net/tcp && break; sleep 0.05; done
echo via-socat | socat -u - TCP:127.0.0.1:9999
wait
echo "socat $(cat got)"
if command -v node >/dev/null; then
  node -e 'const {execSync} = require("child_process"); const fs = require("fs");
    fs.writeFileSync("n", "node-fs"); const {Worker} = require("worker_threads");
    new Worker("1", {eval: true}).on("exit", () =>
      console.log("node", execSync("echo child").toString().trim(), fs.readFileSync("n", "utf8")));'
else
  echo "node absent"
fi
mkdir -p pkg/hello && echo 'X = 1' > pkg/hello/__init__.py
printf '[project]\nname = "hello"\nversion = "1.0"\n' > pkg/pyproject.toml
python3 -m pip install -q --no-index --no-build-isolation --target site ./pkg 2>&1 | tail -3
echo "pip $(PYTHONPATH=site python3 -c 'import hello; print(hello.X)')"
"""


def syscall_numbers() -> dict[str, int]:
    """The native numbers of the probed syscalls, as libseccomp knows them."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    names = {name for _, name, _ in DENIED}
    return {name: int(lib.seccomp_syscall_resolve_name(name.encode())) for name in names}


@pytest.fixture(scope="module")
def probed(battery: Battery, attacker: Agent) -> dict[str, Any]:
    """One run: every probe, then the ordinary workload; its output and stored evidence."""
    numbers = json.dumps(syscall_numbers())
    script = (
        f"cat > /tmp/probe.py <<'EOF'\n{PROBE}\nEOF\n"
        f"python3 /tmp/probe.py '{numbers}'\n"
        "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status\n"
        "ls /proc/self/fd | tr '\\n' ' '; echo\n"
        f"{WORKLOAD}"
    )
    resp = battery.exec(attacker, script, timeout=120)
    assert resp.status_code == 200, resp.text
    text: str = resp.json()["output"]["text"]
    lines = text.splitlines()
    probes = json.loads(lines[0].removeprefix("PROBES "))
    stored = battery.stored(resp.json()["runId"])
    return {"probes": probes, "lines": lines[1:], "evidence": stored["evidence"]}


@pytest.mark.parametrize(("attack", "syscall", "expected"), DENIED, ids=[a for a, _, _ in DENIED])
def test_denied_syscall_fails_with_the_filters_errno(
    probed: dict[str, Any], attack: str, syscall: str, expected: str
) -> None:
    assert probed["probes"][attack] == expected, (syscall, probed["probes"])


def test_the_filter_leaves_ordinary_work_alone(probed: dict[str, Any]) -> None:
    """Same run as the probes: harmless calls and a normal workload succeed."""
    probes = probed["probes"]
    assert probes["personality(query)"] == "ok:0"
    assert probes["personality(PER_LINUX)"] == "ok:0"
    status, fds, *work = probed["lines"][:3], probed["lines"][3], *probed["lines"][4:]
    assert status == ["NoNewPrivs:\t1", "Seccomp:\t2", "Seccomp_filters:\t1"]
    assert fds.split() == ["0", "1", "2", "3"]  # ls's own: the filter's memfd did not leak in
    assert work[0] == "git 1 true"
    assert work[1] == "python sub 285 True 1"
    assert work[2] == "bash 1000 a,b"
    assert work[3] == "socat via-socat"
    expected_node = "node child node-fs" if shutil.which("node") else "node absent"
    assert work[4] == expected_node
    assert work[-1] == "pip 1", work
    seccomp = probed["evidence"]["seccomp"]
    assert seccomp["applied"] is True
    assert seccomp["rules"] >= seccomp["syscalls"] > 50


def test_the_egress_bridge_runs_under_the_filter(battery: Battery, allowlisted: Agent) -> None:
    """socat, the allowlist bridge inside the sandbox, starts and serves under the filter."""
    resp = battery.exec(
        allowlisted,
        "grep -E '^Seccomp_filters:' /proc/self/status;"
        " curl -s -m 10 -o /dev/null -w '%{http_code}\\n' https://blocked.invalid/ || true",
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    lines = resp.json()["output"]["text"].splitlines()
    assert lines[0] == "Seccomp_filters:\t1"
    evidence = battery.stored(resp.json()["runId"])["evidence"]
    assert evidence["seccomp"]["applied"] is True
    assert evidence["egress"]["denied"] == 1  # the request reached the proxy through socat


ABI_PROBE = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long pid;
    printf("native %d\n", syscall(SYS_getpid) > 0);
    fflush(stdout);
    __asm__ volatile ("int $0x80" : "=a"(pid) : "a"(20L) : "memory");  /* i386 getpid */
    printf("i386 survived %d\n", pid > 0);
    return 0;
}
"""


def test_foreign_abi_syscall_kills_the_process(
    battery: Battery, attacker: Agent, tmp_path: Path
) -> None:
    """The filter describes the native table only; an i386 ``int $0x80`` must not get round it."""
    if platform.machine() != "x86_64":
        pytest.skip("the i386 ABI probe is x86_64 only")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: no way to make an int $0x80 program (nothing compiled)")
    # Control on the host, unfiltered: the i386 ABI must exist, else the kill proves nothing.
    (tmp_path / "abi.c").write_text(ABI_PROBE)
    subprocess.run(["gcc", "-o", tmp_path / "abi", tmp_path / "abi.c"], check=True)
    host = subprocess.run([tmp_path / "abi"], capture_output=True, text=True, check=False)
    if host.stdout != "native 1\ni386 survived 1\n":
        pytest.skip(f"this kernel has no i386 syscall ABI ({host.returncode}, {host.stdout!r})")
    out = battery.sh(
        attacker,
        f"cat > /tmp/abi.c <<'EOF'\n{ABI_PROBE}\nEOF\n"
        "gcc -o /tmp/abi /tmp/abi.c && cd /tmp && ulimit -c 0 && { /tmp/abi; echo rc=$?; };"
        " echo after",
    )
    # Killed by SIGSYS (31) right at the foreign syscall; the run itself goes on.
    assert out == "native 1\nrc=159\nafter\n", out
