"""The ``bwrap`` substrate: bubblewrap with per-run cgroups and network policy.

Inside: a tmpfs root, read-only once it is assembled; ``/usr`` (and the
merged-usr links) read-only; a synthetic ``/etc`` with only what programs
need (no shadow, no host users); the agent's home at ``/home/agent`` as the
only persistent writable place; the run's private files read-only at
``/run/runyard``; a private ``/tmp`` and ``/run``; new user, pid, ipc, uts,
cgroup and network namespaces, and no further user namespaces (a nested one
would hand the run a root that may mount and reach far more of the kernel);
no capabilities; ``--die-with-parent`` and ``--new-session``; a seccomp filter
that denies the kernel interfaces a run has no use for (see
:mod:`runyard.sandbox.seccomp`; no filter, no runs); an environment
of exactly what runyard sets. Network: ``deny_all`` has no interfaces but loopback;
``allowlist`` and ``allow_all`` reach only the egress proxy through a bridge
on 127.0.0.1:3128 (see :mod:`runyard.sandbox.egress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from runyard.domain.policies import NetworkMode
from runyard.errors import SandboxUnavailable
from runyard.sandbox import launch
from runyard.sandbox.base import (
    MODEL_PORT,
    ProcessResult,
    ProcessSpec,
    SandboxPaths,
    Substrate,
    kill_group,
    model_env,
    supervise,
)
from runyard.sandbox.cgroups import CgroupManager, Limits, RunCgroup
from runyard.sandbox.egress import EgressPolicy, EgressProxy, EgressSession
from runyard.sandbox.seccomp import SeccompFilter
from runyard.sandbox.volumes import HomeVolumes

INNER_HOME = "/home/agent"
INNER_RUN = "/run/runyard"
INNER_UID = 1000
PROXY_PORT = 3128
# High, sparse range: clear of /etc/subuid allocations, rare collisions.
UID_BASE = 1_000_000_000
UID_SPAN = 1_000_000_000

# Host files bound read-only into the synthetic /etc. Only what programs need:
# CA certificates and OpenSSL's config, never the rest of /etc/ssl (private keys).
HOST_ETC = (
    "ssl/certs", "ssl/openssl.cnf", "ca-certificates", "alternatives", "ld.so.cache",
    "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types", "protocols", "services",
    "os-release", "debian_version", "gai.conf", "host.conf", "inputrc", "nanorc",
    "gitconfig", "python3", "timezone",
)  # fmt: skip

ETC_FILES = {
    "passwd": (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"agent:x:{INNER_UID}:{INNER_UID}:agent:{INNER_HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "group": f"root:x:0:\nagent:x:{INNER_UID}:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
    "hostname": "sandbox\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    "resolv.conf": "",
}


def bridge_script(forwards: list[tuple[int, str]]) -> str:
    """Inside the sandbox: forward each 127.0.0.1 port to its Unix socket, wait
    until every bridge listens, then exec the harness."""
    lines = [
        f"socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:{socket} 2>/dev/null &"
        for port, socket in forwards
    ]
    ready = " && ".join(
        f"grep -qi ':{port:04X} 00000000:0000 0A' /proc/net/tcp" for port, _ in forwards
    )
    lines.append(f"i=0; until {ready}; do")
    lines.append("  i=$((i+1)); [ $i -gt 1000 ] && exit 125; sleep 0.001; done")
    lines.append('exec "$@"')
    return "\n".join(lines)


def _memfd(args: list[str]) -> int:
    fd = os.memfd_create("runyard-bwrap-args", 0)
    os.write(fd, b"".join(a.encode() + b"\0" for a in args))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _bwrap_supports(option: str) -> bool:
    try:
        done = subprocess.run(
            ["bwrap", "--help"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in done.stdout + done.stderr


def sandbox_uid(agent_id: str) -> int:
    """A stable unprivileged host uid per agent, so agents cannot read each other's files."""
    digest = int.from_bytes(hashlib.sha256(agent_id.encode()).digest()[:8], "big")
    return UID_BASE + digest % UID_SPAN


class BwrapSubstrate(Substrate):
    name = "bwrap"

    def __init__(
        self,
        volumes: HomeVolumes,
        scratch: Path,
        egress: EgressProxy,
        cgroups: CgroupManager | None,
        seccomp: SeccompFilter | None = None,
    ) -> None:
        super().__init__(volumes, scratch)
        self._state_dir = volumes.root if volumes.mounted else scratch.parent / "sandbox"
        self._etc = self._state_dir / "etc"
        self._egress = egress
        self._cgroups = cgroups
        self._root = os.geteuid() == 0
        self._checked: str | None = None
        # Compiled once by this substrate (once per worker process), copied into a memfd per run.
        self._seccomp = seccomp or SeccompFilter()

    # ---- set-up and checks ------------------------------------------------------

    def check(self) -> None:
        if self._checked == "ok":
            return
        # First: it needs nothing of the host but libseccomp, and without it no run starts.
        self._seccomp.program()
        missing = [tool for tool in ("bwrap", "socat") if shutil.which(tool) is None]
        if missing:
            raise SandboxUnavailable(
                f"sandbox tools missing: {', '.join(missing)} (apt-get install bubblewrap socat)"
            )
        if not _bwrap_supports("--disable-userns"):
            raise SandboxUnavailable(
                "bubblewrap 0.8 or newer is required (--disable-userns keeps runs from"
                " creating nested user namespaces)"
            )
        if self._root and shutil.which("setpriv") is None:
            raise SandboxUnavailable("setpriv (util-linux) is required to drop privileges")
        if self._cgroups is not None:
            self._cgroups.check()
        self.volumes.check()
        self._write_etc()
        self._checked = "ok"

    def _write_etc(self) -> None:
        """Build the synthetic /etc afresh, then swap it in (runs may be using the old one)."""
        self._state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._state_dir, 0o711 if self.volumes.mounted else 0o755)
        fresh = self._state_dir / f"etc.new-{os.getpid()}"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o755)
        for name, text in ETC_FILES.items():
            (fresh / name).write_text(text)
            os.chmod(fresh / name, 0o644)
        # Host entries are copied (symlinks kept: they point into the read-only
        # /usr), so a run costs one bind of /etc instead of one per entry.
        for name in HOST_ETC:
            src = Path("/etc") / name
            dst = fresh / name
            dst.parent.mkdir(mode=0o755, exist_ok=True)
            if src.is_dir() and not src.is_symlink():
                shutil.copytree(src, dst, symlinks=True)
            elif src.exists() or src.is_symlink():
                shutil.copy2(src, dst, follow_symlinks=False)
        stale = self._state_dir / f"etc.old-{os.getpid()}"
        if self._etc.exists():
            self._etc.rename(stale)
        fresh.rename(self._etc)
        shutil.rmtree(stale, ignore_errors=True)

    def paths(self, spec_home: Path, run_dir: Path) -> SandboxPaths:
        return SandboxPaths(home=INNER_HOME, run_dir=INNER_RUN)

    def owner_of(self, agent_id: str) -> int | None:
        return sandbox_uid(agent_id) if self._root else None

    # ---- running ---------------------------------------------------------------------

    def _bwrap_args(self, spec: ProcessSpec, home: str, run: str, etc: str) -> list[str]:
        args = ["bwrap", "--unshare-user", "--disable-userns", "--unshare-pid"]
        args += ["--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--unshare-net", "--hostname", "sandbox"]
        args += ["--uid", str(INNER_UID), "--gid", str(INNER_UID)]
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        args += ["--tmpfs", "/", "--ro-bind", "/usr", "/usr"]
        for link in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
            target = Path("/") / link
            if target.is_symlink():
                args += ["--symlink", os.readlink(target), f"/{link}"]
            elif target.is_dir():
                args += ["--ro-bind", str(target), f"/{link}"]
        args += ["--ro-bind", etc, "/etc"]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
        args += ["--ro-bind", run, INNER_RUN]
        if spec.ephemeral_home:
            size = spec.policy.resource_limits.disk_gib * 1024**3
            args += ["--perms", "0700", "--size", str(size), "--tmpfs", INNER_HOME]
        else:
            args += ["--bind", home, INNER_HOME]
        # Only the mounts above stay writable: nothing lands on the root itself.
        args += ["--remount-ro", "/"]
        args += ["--chdir", f"{INNER_HOME}/{spec.cwd}".rstrip("/.") or INNER_HOME]
        args += ["--clearenv"]
        env = {
            **spec.env,
            "HOME": INNER_HOME,
            "USER": "agent",
            "LOGNAME": "agent",
            "SHELL": "/bin/bash",
            "TMPDIR": "/tmp",
        }
        if spec.policy.network_policy.mode is not NetworkMode.DENY_ALL:
            proxy = f"http://127.0.0.1:{PROXY_PORT}"
            for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[var] = proxy
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1"
        if spec.gateway_socket is not None:
            env.update(model_env(f"http://127.0.0.1:{MODEL_PORT}", env))
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args

    async def run(self, spec: ProcessSpec, cancel: asyncio.Event) -> ProcessResult:
        self.check()
        policy = spec.policy
        uid = self.owner_of(spec.agent_id)
        seccomp = self._seccomp.program()
        cgroup: RunCgroup | None = None
        session: EgressSession | None = None
        args_fd = seccomp_fd = -1
        try:
            if self._cgroups is not None:
                limits = policy.resource_limits
                cgroup = await asyncio.to_thread(
                    self._cgroups.create,
                    spec.run_id,
                    Limits(limits.memory_mib * 1024 * 1024, limits.pids, limits.cpus),
                )
            network = policy.network_policy
            inner = list(spec.argv)
            forwards: list[tuple[int, str]] = []
            if spec.gateway_socket is not None:
                forwards.append((MODEL_PORT, f"{INNER_RUN}/{spec.gateway_socket.name}"))
            if network.mode is not NetworkMode.DENY_ALL:
                session = await self._egress.open(
                    spec.run_dir / "egress.sock",
                    EgressPolicy(
                        allow_all=network.mode is NetworkMode.ALLOW_ALL,
                        domains=tuple(network.allow_list),
                    ),
                    owner=uid,
                )
                forwards.append((PROXY_PORT, f"{INNER_RUN}/egress.sock"))
            if forwards:
                inner = ["/bin/sh", "-c", bridge_script(forwards), "runyard-bridge", *inner]
            home, run, etc = str(spec.home), str(spec.run_dir), str(self._etc)
            # Arguments travel through a memfd (bwrap --args), never the command
            # line: the environment may carry secrets and /proc/*/cmdline is public.
            # (bwrap only takes options that way; the command stays on the line.)
            # bwrap installs the filter just before it execs the run's program; it
            # reads the fd to its end, so each run gets a fresh copy.
            seccomp_fd = seccomp.memfd()
            options = [*self._bwrap_args(spec, home, run, etc)[1:], "--seccomp", str(seccomp_fd)]
            args_fd = _memfd(options)
            command = ["bwrap", "--args", str(args_fd), "--", *inner]
            argv, env = launch.launcher(
                command, cgroup_procs=cgroup.procs_files if cgroup else [], uid=uid
            )

            def kill_tree(pid: int) -> None:
                kill_group(pid)
                if cgroup is not None:
                    cgroup.kill()

            result = await supervise(
                argv,
                cwd=spec.run_dir,
                env=env,
                stdin=spec.stdin,
                timeout_seconds=spec.timeout_seconds,
                max_output_bytes=spec.max_output_bytes,
                on_output=spec.on_output,
                cancel=cancel,
                kill_tree=kill_tree,
                pass_fds=(args_fd, seccomp_fd),
            )
            evidence: dict[str, object] = {
                "cgroup": cgroup is not None,
                "uidIsolated": uid is not None,
                "seccomp": seccomp.evidence(),
            }
            if cgroup is not None:
                events = cgroup.memory_events()
                if events.get("oom_kill") or events.get("max"):
                    evidence["memoryLimitHit"] = True
            if session is not None:
                evidence["egress"] = session.stats.evidence()
            return result.with_evidence(evidence)
        finally:
            for fd in (args_fd, seccomp_fd):
                if fd >= 0:
                    os.close(fd)
            if session is not None:
                await session.close()
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)
            with contextlib.suppress(FileNotFoundError):
                (spec.run_dir / "egress.sock").unlink()
