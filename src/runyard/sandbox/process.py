"""The ``process`` substrate: no isolation, for development only.

It runs the harness as a plain child process in the agent's home with a
minimal environment (no host variables leak in). Its one guarantee is that
nothing of a run outlives it: the harness is pid 1 of its own pid namespace
(``unshare --pid --kill-child``), whose every process dies with it, and the
``unshare`` itself gets SIGKILL if the worker dies (``setpriv --pdeathsig``).
It never applies file, network, memory or disk policy; runyard uses it only
when it is chosen explicitly.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from runyard.sandbox.base import (
    ProcessResult,
    ProcessSpec,
    SandboxPaths,
    ShortUnixPath,
    Substrate,
    model_env,
    supervise,
)
from runyard.sandbox.egress import pipe
from runyard.sandbox.volumes import HomeVolumes


class ProcessSubstrate(Substrate):
    name = "process"

    def __init__(self, volumes: HomeVolumes, scratch: Path) -> None:
        super().__init__(volumes, scratch)
        # util-linux, without a preexec_fn (unsafe in a threaded process).
        self._die_with_parent: list[str] = []
        setpriv, unshare = shutil.which("setpriv"), shutil.which("unshare")
        if setpriv:
            self._die_with_parent += [setpriv, "--pdeathsig", "KILL", "--"]
        if unshare:
            self._die_with_parent += [unshare, "--pid", "--fork", "--kill-child=KILL"]
            if os.geteuid() != 0:
                self._die_with_parent.append("--map-current-user")
            self._die_with_parent.append("--")

    def check(self) -> None:
        """Always available: it needs nothing but fork and exec."""

    def paths(self, spec_home: Path, run_dir: Path) -> SandboxPaths:
        return SandboxPaths(home=str(spec_home), run_dir=str(run_dir))

    async def run(self, spec: ProcessSpec, cancel: asyncio.Event) -> ProcessResult:
        env = {**spec.env, "HOME": str(spec.home)}
        relay: asyncio.Server | None = None
        if spec.gateway_socket is not None:
            # The host network is the run's network here: serve the gateway's
            # socket on an ephemeral loopback port.
            relay = await _tcp_relay(spec.gateway_socket)
            port = relay.sockets[0].getsockname()[1]
            env.update(model_env(f"http://127.0.0.1:{port}", env))
        try:
            result = await supervise(
                [*self._die_with_parent, *spec.argv],
                cwd=spec.home / spec.cwd,
                env=env,
                stdin=spec.stdin,
                timeout_seconds=spec.timeout_seconds,
                max_output_bytes=spec.max_output_bytes,
                on_output=spec.on_output,
                cancel=cancel,
            )
        finally:
            if relay is not None:
                relay.close()
        return result.with_evidence({"cgroup": False, "isolation": "none (development only)"})


async def _tcp_relay(socket_path: Path) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with ShortUnixPath(socket_path.parent, socket_path.name) as reachable:
                up_reader, up_writer = await asyncio.open_unix_connection(str(reachable))
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)
