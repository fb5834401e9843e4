"""Attacks on processes, privileges and resources from inside a bwrap sandbox.

Reading the host's environment, seeing, signalling or ptracing host
processes, setuid escalation, fork and memory bombs, and processes that try
to outlive their run: detached past the end of the script, past the
timeout, past a cancel (deleting the agent), past a crash of runyard
itself. Each must fail, and the host side is checked too: the host process
still lives, the marked processes are gone, the run's cgroups are removed,
the next run of the same agent works.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_up
from tests.sandbox.conftest import (
    CGROUP_ROOT,
    Agent,
    Battery,
    clean_instance,
    poll,
    stored_run_ids,
    survivors,
    unique,
)


@pytest.fixture
def host_sleep() -> Iterator[subprocess.Popen[bytes]]:
    """A host process the sandbox will try to reach."""
    proc = subprocess.Popen(["sleep", "1000"])
    yield proc
    proc.kill()
    proc.wait()


def cgroups_of(run_id: str) -> list[Path]:
    return [*CGROUP_ROOT.glob(f"*/runyard/{run_id}"), *CGROUP_ROOT.glob(f"runyard/{run_id}")]


def test_host_environment_does_not_leak(battery: Battery, attacker: Agent) -> None:
    out = battery.sh(
        attacker,
        "env; echo ---; for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done 2>/dev/null",
    )
    assert battery.host_marker not in out
    inside = out.partition("---\n")[0]
    names = {line.split("=", 1)[0] for line in inside.splitlines()}
    assert names <= {
        "PATH", "LANG", "TERM", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "PWD", "SHLVL",
        "_", "RUNYARD_RUN_ID", "RUNYARD_AGENT_ID", "OLDPWD",
    }  # fmt: skip
    # bwrap is pid 1 inside: its environment tells nothing about the host either.
    for leak in ("RUNYARD_UID", "RUNYARD_CGROUP_PROCS", str(battery.instance), "/sys/fs/cgroup"):
        assert leak not in out
    assert str(battery.data_dir) not in out


def test_host_processes_are_invisible(
    battery: Battery, attacker: Agent, host_sleep: subprocess.Popen[bytes]
) -> None:
    out = battery.sh(
        attacker,
        f"ls -d /proc/{host_sleep.pid} /proc/{battery.server.proc.pid} 2>/dev/null;"
        " ps -eo pid=,args= | grep -v ' ps -eo'; echo ---;"
        " cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '",
    )
    listing, _, cmdlines = out.partition("---\n")
    pids = [int(line.split()[0]) for line in listing.splitlines()]
    assert host_sleep.pid not in pids and battery.server.proc.pid not in pids
    assert min(pids) == 1 and max(pids) < 100  # its own pid namespace
    assert "runyard up" not in cmdlines and "--data-dir" not in cmdlines
    assert "sleep 1000" not in cmdlines


def test_signalling_a_host_process_fails(
    battery: Battery, attacker: Agent, host_sleep: subprocess.Popen[bytes]
) -> None:
    server_pid = battery.server.proc.pid
    out = battery.sh(
        attacker,
        f"kill -9 {host_sleep.pid} 2>/dev/null && echo KILLED || echo refused;"
        f" kill -STOP {server_pid} 2>/dev/null && echo STOPPED || echo refused;"
        " kill -9 -1 2>/dev/null; echo survived",
    )
    assert out == "refused\nrefused\nsurvived\n"
    assert host_sleep.poll() is None
    assert battery.healthy()


def test_ptrace_of_a_host_process_fails(
    battery: Battery, attacker: Agent, host_sleep: subprocess.Popen[bytes]
) -> None:
    pid = host_sleep.pid
    script = (
        f"ls /proc/{pid} >/dev/null 2>&1 && echo VISIBLE || echo absent;"
        " python3 -c 'import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True);"
        f" r = libc.ptrace(16, {pid}, 0, 0); print(r, ctypes.get_errno())';"
        f" cat /proc/{pid}/mem 2>/dev/null && echo READ || echo refused;"
    )
    if Path("/usr/bin/strace").exists():
        script += f" strace -p {pid} -e trace=none 2>/dev/null && echo TRACED || echo refused;"
    out = battery.sh(attacker, script)
    lines = out.splitlines()
    assert lines[0] == "absent"
    assert lines[1] == "-1 3"  # ESRCH: no such process in its world
    assert all(line == "refused" for line in lines[2:])
    status = Path(f"/proc/{pid}/status").read_text()
    assert "TracerPid:\t0" in status
    assert host_sleep.poll() is None


def test_no_privileges_and_no_setuid_escalation(battery: Battery, attacker: Agent) -> None:
    out = battery.sh(
        attacker,
        "grep -E '^(NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb|Uid):' /proc/self/status;"
        " su -c id root </dev/null >/dev/null 2>&1 && echo SU || echo refused;"
        " sudo -n id >/dev/null 2>&1 && echo SUDO || echo refused;"
        " setpriv --reuid=0 id >/dev/null 2>&1 && echo SETPRIV || echo refused;"
        " python3 -c 'import os; os.setuid(0)' 2>/dev/null && echo SETUID || echo refused;"
        " grep ' /usr ' /proc/self/mountinfo | grep -c nosuid",
    )
    status = dict(line.split(":\t", 1) for line in out.splitlines()[:7])
    assert status["NoNewPrivs"] == "1"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])
    assert status["Uid"].split() == ["1000"] * 4
    assert out.splitlines()[7:] == ["refused"] * 4 + ["1"]


def test_fork_bomb_is_contained(battery: Battery, attacker: Agent) -> None:
    # With pids=64 the bomb cannot get far; the timeout ends it, whole tree included.
    resp = battery.exec(attacker, ":(){ :|:& };:; exec sleep 60", timeout=5)
    data = battery.failed(resp, 504, "RUN_TIMED_OUT")
    run_id = data["runId"]
    assert battery.healthy()
    poll(lambda: cgroups_of(run_id), lambda dirs: not dirs)
    # The pids limit holds: forks fail well before the host would notice.
    out = battery.sh(
        attacker,
        "python3 -c '\nimport os, time\nn = 0\ntry:\n    while n < 1000:\n"
        "        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n"
        "        n += 1\nexcept OSError as e:\n    print(n, e.errno)\n'",
    )
    forked, errno = (int(x) for x in out.split())
    assert forked < 64 and errno == 11  # EAGAIN from the pids cgroup
    assert battery.sh(attacker, "echo alive") == "alive\n"


def test_memory_bomb_is_killed(battery: Battery, attacker: Agent) -> None:
    resp = battery.exec(attacker, "python3 -c 'b = bytearray(1024 * 1024 * 1024); print(len(b))'")
    data = battery.failed(resp, 502, "RUN_FAILED")
    stored = battery.stored(data["runId"])
    assert stored["errorCode"] == "harness_failed"
    assert stored["evidence"]["memoryLimitHit"] is True
    resp = battery.exec(attacker, "head -c 2G /dev/zero | tail")
    assert battery.failed(resp, 502, "RUN_FAILED")["runError"]["code"] == "harness_failed"
    # tmpfs is memory too: filling /tmp cannot take the host's RAM either.
    resp = battery.exec(attacker, "head -c 2G /dev/zero > /tmp/fill")
    battery.failed(resp, 502, "RUN_FAILED")
    assert battery.healthy()
    assert battery.sh(attacker, "echo alive") == "alive\n"


def test_detached_child_does_not_outlive_the_script(battery: Battery, attacker: Agent) -> None:
    marker = unique("detached")
    out = battery.sh(
        attacker,
        f"setsid bash -c 'exec -a {marker}-a sleep 1000' </dev/null >/dev/null 2>&1 &"
        f" ( ( exec -a {marker}-b sleep 1000 ) & ) ;"
        f" nohup bash -c 'exec -a {marker}-c sleep 1000' >/dev/null 2>&1 & disown; echo started",
    )
    assert out == "started\n"
    poll(lambda: survivors(marker), lambda found: not found)


def test_detached_child_does_not_outlive_the_timeout(battery: Battery, attacker: Agent) -> None:
    marker = unique("past-timeout")
    resp = battery.exec(
        attacker,
        f"setsid bash -c 'trap \"\" TERM HUP; exec -a {marker} sleep 1000' </dev/null"
        " >/dev/null 2>&1 & sleep 1000",
        timeout=3,
    )
    run_id = battery.failed(resp, 504, "RUN_TIMED_OUT")["runId"]
    poll(lambda: survivors(marker), lambda found: not found)
    poll(lambda: cgroups_of(run_id), lambda dirs: not dirs)


def test_detached_child_does_not_outlive_a_cancel(battery: Battery) -> None:
    """Deleting the agent cancels its run; the double-forked grandchild goes with it."""
    doomed = battery.agent(resourceLimits={"diskGiB": 1})
    marker = unique("past-cancel")
    answer: dict[str, httpx.Response] = {}

    def submit() -> None:
        answer["resp"] = battery.exec(
            doomed,
            f"( setsid bash -c 'exec -a {marker} sleep 1000' </dev/null >/dev/null 2>&1 & );"
            " sleep 1000",
            timeout=120,
        )

    worker = threading.Thread(target=submit)
    worker.start()
    try:
        poll(lambda: survivors(marker), bool)
        resp = battery.delete(doomed)
        assert resp.status_code == 200, resp.text
        poll(lambda: survivors(marker), lambda found: not found)
    finally:
        worker.join(timeout=150)
    assert not worker.is_alive()
    cancelled = answer["resp"]
    assert cancelled.status_code == 409, cancelled.text
    run_id = cancelled.json()["data"]["runId"]
    assert battery.stored(run_id)["status"] == "cancelled"
    poll(lambda: cgroups_of(run_id), lambda dirs: not dirs)


def test_nothing_outlives_a_crashed_runyard(battery: Battery, tmp_path: Path) -> None:
    """SIGKILL the whole of runyard mid-run: bwrap dies with it and takes the pid namespace."""
    data_dir = tmp_path / "data"
    server = start_up(data_dir, {"RUNYARD_SANDBOX": "bwrap"})
    marker = unique("orphan")
    try:
        with server.client() as client:
            resp = client.post(
                "/v1/workspaces/default/agents",
                json={"name": unique("Crash"), "runtimePolicy": {"resourceLimits": {"diskGiB": 1}}},
            )
            assert resp.status_code == 201, resp.text
            agent_id = resp.json()["agent"]["id"]
            script = (
                f"setsid bash -c 'exec -a {marker}-a sleep 1000' </dev/null >/dev/null 2>&1 &"
                f" exec -a {marker}-b sleep 1000"
            )
            body = json.dumps({"input": script, "timeoutSeconds": 300})
            threading.Thread(
                target=_post_quietly,
                args=(f"{server.base_url}/v1/agents/{agent_id}/exec", server.workspace_key, body),
                daemon=True,
            ).start()
            poll(lambda: survivors(marker), lambda found: len(found) == 2)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        poll(lambda: survivors(marker), lambda found: not found)
    finally:
        server.stop()
        clean_instance(data_dir, stored_run_ids(data_dir))


def _post_quietly(url: str, key: str, body: str) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        httpx.post(url, content=body, headers=headers, timeout=330)
    except httpx.HTTPError:
        return
