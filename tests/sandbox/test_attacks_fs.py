"""Attacks on the file system from inside a bwrap sandbox; each must fail.

Writing outside the home (root, ``/usr``, ``/etc``, the run's files,
``/proc/sys``, ``/sys``), ``/tmp`` surviving a run, reading the host's
``/etc/shadow``, runyard's database and credentials, another agent's home,
escaping through ``..`` or a planted symlink, mounting, nested user
namespaces, filling the disk past ``diskGiB``. Every attack is also checked
from the host: nothing was written there, the home image stayed within its
size, files belong to the agent's own unprivileged uid.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.sandbox.conftest import Agent, Battery, unique


@pytest.mark.parametrize("target", ["/", "/usr", "/etc", "/run/runyard", "/home"])
def test_write_outside_the_home_fails(battery: Battery, attacker: Agent, target: str) -> None:
    name = unique("planted")
    out = battery.sh(
        attacker,
        f"echo pwned > {target}/{name} 2>/dev/null && echo WROTE || echo refused;"
        f" mkdir {target}/{name}.d 2>/dev/null && echo WROTE || echo refused",
    )
    assert out == "refused\nrefused\n"
    host_target = Path(target)
    assert not (host_target / name).exists()
    assert not (host_target / f"{name}.d").exists()


def test_write_to_proc_sys_and_sys_fails(battery: Battery, attacker: Agent) -> None:
    before = Path("/proc/sys/kernel/hostname").read_text()
    out = battery.sh(
        attacker,
        "for f in /proc/sys/kernel/hostname /proc/sys/vm/drop_caches /sys/kernel/uevent_helper"
        " /proc/sysrq-trigger /sys/fs/cgroup/pids/pids.max; do"
        " (echo 1 > $f) 2>/dev/null && echo WROTE $f || echo refused; done",
    )
    assert out == "refused\n" * 5
    assert Path("/proc/sys/kernel/hostname").read_text() == before


def test_tmp_is_private_to_each_run(battery: Battery, attacker: Agent) -> None:
    name = unique("tmp-marker")
    assert battery.sh(attacker, f"echo x > /tmp/{name} && ls /tmp") == f"{name}\n"
    assert not (Path("/tmp") / name).exists()
    assert battery.sh(attacker, f"ls /tmp/{name} 2>/dev/null || echo gone") == "gone\n"


def test_read_host_shadow_fails(battery: Battery, attacker: Agent) -> None:
    out = battery.sh(attacker, "cat /etc/shadow /etc/gshadow 2>/dev/null; echo rc=$?; ls /etc")
    assert out.startswith("rc=1\n")
    assert "shadow" not in out
    assert "sudoers" not in out


def test_host_tls_private_keys_are_not_there(battery: Battery, attacker: Agent) -> None:
    out = battery.sh(
        attacker,
        "ls -d /etc/ssl/private 2>/dev/null || echo absent; ls /etc/ssl;"
        " test -s /etc/ssl/certs/ca-certificates.crt && echo ca-bundle",
    )
    # CA certificates stay (TLS must work); the keys directory is not in the sandbox at all.
    kept = [n for n in ("certs", "openssl.cnf") if (Path("/etc/ssl") / n).exists()]
    expected = "absent\n" + "".join(f"{n}\n" for n in kept)
    if Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        expected += "ca-bundle\n"
    assert out == expected


def test_read_runyard_database_and_credentials_fails(battery: Battery, attacker: Agent) -> None:
    data = battery.data_dir
    out = battery.sh(
        attacker,
        f"for f in {data}/runyard.db {data}/credentials.json /proc/1/root{data}/runyard.db"
        f" /proc/self/root{data}/credentials.json; do"
        " cat $f 2>/dev/null && echo READ || echo refused; done;"
        f" ls {data} {data.parent} 2>/dev/null; echo end",
    )
    assert out == "refused\n" * 4 + "end\n"
    assert battery.client.headers["Authorization"].split()[1] not in out


def test_read_another_agents_home_fails(
    battery: Battery, attacker: Agent, victim: tuple[Agent, str]
) -> None:
    other, secret = victim
    mount_path = battery.home(other)
    image = battery.data_dir / "agents" / other.id / "home.img"
    assert (mount_path / "secret.txt").read_text() == secret  # it is there, on the host
    out = battery.sh(
        attacker,
        f"for f in {mount_path}/secret.txt {image} {battery.data_dir}/agents/{other.id}/home"
        f" /proc/1/root{mount_path}/secret.txt; do"
        " cat $f 2>/dev/null && echo READ || echo refused; done;"
        f" ls {battery.instance} {battery.instance}/homes 2>/dev/null;"
        # Search every place the run can see but /proc and /usr; the pattern is split so
        # that the script itself does not match.
        f" a={secret[:6]}; b={secret[6:]};"
        ' grep -rlF "$a$b" /etc /run /tmp /home /dev 2>/dev/null; echo end',
    )
    assert secret not in out
    assert out == "refused\n" * 4 + "end\n"


def test_host_side_uid_isolation_between_agents(
    battery: Battery, attacker: Agent, victim: tuple[Agent, str]
) -> None:
    """Even on the host, outside any sandbox, the attacker's uid cannot enter the victim's home."""
    other, secret = victim
    assert battery.uid(attacker) != battery.uid(other)
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={battery.uid(attacker)}",
            f"--regid={battery.uid(attacker)}",
            "--clear-groups",
            "cat",
            str(battery.home(other) / "secret.txt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert secret not in done.stdout
    assert "Permission denied" in done.stderr


def test_inner_uid_is_1000_and_host_owner_is_the_agents_uid(
    battery: Battery, attacker: Agent
) -> None:
    name = unique("owned")
    out = battery.sh(attacker, f"id -u; id -g; touch ~/{name}; stat -c '%u %g' ~/{name}")
    assert out == "1000\n1000\n1000 1000\n"
    st = (battery.home(attacker) / name).stat()
    uid = battery.uid(attacker)
    assert (st.st_uid, st.st_gid) == (uid, uid)
    assert uid != 0
    home = battery.home(attacker).stat()
    assert (home.st_uid, home.st_mode & 0o777) == (uid, 0o700)


@pytest.mark.parametrize(
    "field_value",
    [
        {"cwd": "../.."},
        {"cwd": "a/../../b"},
        {"workspace": ".."},
        {"workspace": "/etc"},
        {"cwd": "/"},
    ],
    ids=lambda fields: ",".join(f"{k}={v}" for k, v in fields.items()),
)
def test_path_traversal_through_workspace_and_cwd_is_rejected(
    battery: Battery, attacker: Agent, field_value: dict[str, str]
) -> None:
    name = unique("traversal")
    resp = battery.exec(attacker, f"touch {name}", **field_value)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "BAD_REQUEST"
    assert not (battery.home(attacker) / name).exists()


@pytest.mark.parametrize(
    "link", ["/", "/etc", "../../../../..", "/run/runyard", "/home/agent/../.."]
)
def test_symlink_planted_in_the_home_cannot_move_cwd_outside(
    battery: Battery, attacker: Agent, link: str
) -> None:
    name = unique("escape")
    battery.sh(attacker, f"ln -s {link} ~/{name}")
    ran = unique("ran")
    resp = battery.exec(attacker, f"touch {ran}; pwd", cwd=name)
    data = battery.failed(resp, 502, "RUN_FAILED")
    assert data["runError"]["code"] == "invalid_path"
    # The script never ran, anywhere.
    host_side = (battery.home(attacker) / name).resolve()
    for where in (battery.home(attacker), host_side, Path("/")):
        assert not (where / ran).exists()
    # Nor does runyard create the working directory where the link points on the host.
    sub = unique("sub")
    resp = battery.exec(attacker, f"touch {ran}", workspace=name, cwd=sub)
    assert battery.failed(resp, 502, "RUN_FAILED")["runError"]["code"] == "invalid_path"
    assert not (host_side / sub).exists()


def test_symlink_to_host_shadow_reads_nothing(battery: Battery, attacker: Agent) -> None:
    name = unique("s")
    out = battery.sh(
        attacker,
        f"ln -s /etc/shadow ~/{name}; cat ~/{name} 2>/dev/null && echo READ || echo refused;"
        f" ln ~/{name} ~/{name}.hard 2>/dev/null; cat ~/{name}.hard 2>/dev/null || echo refused",
    )
    assert out == "refused\nrefused\n"
    # The link exists on the host, pointing at a path the sandbox resolved inside itself.
    assert os.readlink(battery.home(attacker) / name) == "/etc/shadow"


def test_mount_tmpfs_and_bind_fail(battery: Battery, attacker: Agent) -> None:
    out = battery.sh(
        attacker,
        "mkdir -p /tmp/m ~/m;"
        " mount -t tmpfs none /tmp/m 2>/dev/null && echo MOUNTED || echo refused;"
        " mount --bind /usr ~/m 2>/dev/null && echo MOUNTED || echo refused;"
        " mount -o remount,rw /usr 2>/dev/null && echo MOUNTED || echo refused;"
        " umount /etc 2>/dev/null && echo UNMOUNTED || echo refused;"
        " grep -c ' /usr ' /proc/self/mountinfo",
    )
    assert out == "refused\nrefused\nrefused\nrefused\n1\n"


def test_nested_user_namespace_cannot_be_created(battery: Battery, attacker: Agent) -> None:
    """A nested user namespace would hand the run a root that may mount (and far more)."""
    out = battery.sh(
        attacker,
        "unshare -r id 2>/dev/null && echo NESTED || echo refused;"
        " unshare -Urm mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED || echo refused;"
        " python3 -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True);"
        " print(libc.unshare(0x10000000), ctypes.get_errno() != 0)'",
    )
    assert out == "refused\nrefused\n-1 True\n"


def test_disk_fill_stops_at_disk_gib(battery: Battery, attacker: Agent) -> None:
    image = battery.data_dir / "agents" / attacker.id / "home.img"
    out = battery.sh(
        attacker,
        "dd if=/dev/zero of=~/fill bs=4M count=400 2>&1 | grep -c 'No space left';"
        " fallocate -l 3G ~/fill2 2>&1 | grep -c 'No space left';"
        " rm -f ~/fill ~/fill2; df -k --output=size ~ | tail -1",
    )
    enospc_dd, enospc_fallocate, size_k = out.split()
    assert (enospc_dd, enospc_fallocate) == ("1", "1")
    assert int(size_k) <= 1024 * 1024
    st = image.stat()
    assert st.st_size == 1024**3
    assert st.st_blocks * 512 <= 1024**3  # the host never gave it more than diskGiB
    # The home still works after the disk was full.
    assert battery.sh(attacker, "echo ok > ~/after && cat ~/after && rm ~/after") == "ok\n"


def test_ephemeral_home_is_capped_and_forgotten(battery: Battery) -> None:
    """``persistent: false``: a tmpfs home of diskGiB, gone with the run."""
    agent = battery.agent(resourceLimits={"diskGiB": 1}, storagePolicy={"persistent": False})
    name = unique("left-behind")
    out = battery.sh(
        agent,
        f"echo x > ~/{name}; df -k --output=size ~ | tail -1;"
        " fallocate -l 2G ~/big 2>/dev/null && echo FITS || echo refused",
    )
    size_k, verdict = out.split()
    assert int(size_k) == 1024 * 1024 and verdict == "refused"
    assert battery.sh(agent, f"ls ~/{name} 2>/dev/null || echo gone") == "gone\n"
    assert not (battery.home(agent) / name).exists()
