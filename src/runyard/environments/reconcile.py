"""Applies an agent's declared capabilities to its home and records evidence.

The agent's home is agent-controlled (it may hold symlinks planted to
redirect a privileged write), so nothing here writes into it as root: files
are fetched into a private staging directory on the host (see
:mod:`runyard.environments.fetch`), handed to the agent's uid, and copied
into the home by short scripts run INSIDE the agent's sandbox through the
substrate, as the agent. (The ``process`` substrate has no isolation and
runs them as the worker's user: development only.)

Per capability, the evidence is: a skill copied into ``~/.agents/skills/<name>``
and linked into each enabled harness's skill directory → ``projected``; a CLI
whose ``executable versionArgs`` exits 0 in the sandbox → ``validated``; MCP
servers written to ``~/.agents/mcp.json`` → ``projected``; packages installed
by pip/npm in the sandbox → ``available``; anything else → ``failed`` with a
client-safe error. Disabled and deleted skills are removed from the home.
The reconciliation ends ``applied`` even when some capabilities failed (the
environment stays usable; ``lastError`` summarizes the failures and each
capability's evidence says why); it ends ``failed`` only when it could not
run at all (no sandbox, no home).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from runyard.domain.capabilities import Capability
from runyard.domain.entities import Agent
from runyard.domain.policies import HarnessTarget, NetworkMode, RuntimePolicy, enabled_harnesses
from runyard.environments import scripts
from runyard.environments.fetch import chown_tree, stage_skill
from runyard.errors import FetchError, SandboxUnavailable
from runyard.sandbox.base import ProcessResult, ProcessSpec, Substrate
from runyard.services.agents import parse_runtime_policy
from runyard.store.base import Store
from runyard.types import new_ulid, now_millis

log = logging.getLogger("runyard.environments")

# Where each harness looks for skills, relative to the home (all two levels deep,
# so a projection is the relative link ../../.agents/skills/<name>).
SKILL_DIRS = {
    "claude-code": ".claude/skills",
    "codex": ".codex/skills",
    "openclaw": ".openclaw/skills",
    "hermes": ".hermes/skills",
}
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}
STEP_TIMEOUT_S = 120.0
INSTALL_TIMEOUT_S = 600.0


@dataclass
class _Ctx:
    agent: Agent
    policy: RuntimePolicy
    home: Path
    run_dir: Path
    inner_stage: str
    owner: int | None
    persistent: bool
    steps: int = 0


class Reconciler:
    def __init__(self, store: Store, substrate: Substrate) -> None:
        self._store = store
        self._substrate = substrate

    async def apply(self, agent: Agent) -> None:
        generation = await asyncio.to_thread(self._store.reconciliation_generation, agent.id)
        if generation is None:
            return
        caps = await asyncio.to_thread(self._store.list_capabilities, agent.workspace_id, agent.id)
        try:
            status, error = "applied", await self._apply(agent, caps)
        except SandboxUnavailable as exc:
            status, error = "failed", f"the sandbox is unavailable: {exc.message}"
        except OSError as exc:
            log.warning("reconciling %s failed: %s", agent.id, exc)
            status, error = "failed", "the agent's home could not be prepared"
        await asyncio.to_thread(
            self._store.finish_reconciliation, agent.id, generation, status, error, now_millis()
        )

    async def _apply(self, agent: Agent, caps: list[Capability]) -> str | None:
        self._substrate.check()
        policy = parse_runtime_policy(agent)
        persistent = policy.storage_policy.persistent
        owner = self._substrate.owner_of(agent.id)
        run_dir = self._substrate.run_dir(f"reconcile-{agent.id}-{new_ulid()}")
        await asyncio.to_thread(_private_dir, run_dir, owner)
        try:
            if persistent:
                home = await asyncio.to_thread(self._substrate.prepare_home, agent.id, policy)
            else:
                home = run_dir / "home"
                await asyncio.to_thread(_private_dir, home, owner)
            await asyncio.to_thread(_private_dir, run_dir / "stage", owner)
            inner = self._substrate.paths(home, run_dir).run_dir + "/stage"
            ctx = _Ctx(agent, policy, home, run_dir, inner, owner, persistent)
            return await self._apply_all(ctx, caps)
        finally:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)

    async def _apply_all(self, ctx: _Ctx, caps: list[Capability]) -> str | None:
        active = [c for c in caps if c.status == "declared"]
        targets = [HarnessTarget.model_validate(t) for t in ctx.agent.harness_targets]
        skill_dirs = [SKILL_DIRS[h] for h in enabled_harnesses(targets) if h in SKILL_DIRS]
        failures: list[str] = []
        if ctx.persistent:
            names = [c.name for c in active if c.kind == "skill"]
            pruned = await self._sh(
                ctx, scripts.PRUNE, [str(len(names)), *names, *SKILL_DIRS.values()]
            )
            if pruned.exit_code != 0:
                failures.append(f"removing old skills failed: {_tail(pruned)}")
        for cap in caps:
            if cap.status != "declared":
                await self._record(cap, None, None)
                continue
            status, error = await self._apply_one(ctx, cap, skill_dirs)
            await self._record(cap, status, error)
            if error is not None:
                failures.append(f"{cap.kind} {cap.name!r}: {error}")
        mcp = [c for c in active if c.kind == "mcp_server"]
        if ctx.persistent and not mcp:
            await self._sh(ctx, scripts.REMOVE_MCP, [])
        if not failures:
            return None
        return f"{len(failures)} capability step(s) failed: " + "; ".join(failures)[:2000]

    async def _record(self, cap: Capability, status: str | None, error: str | None) -> None:
        await asyncio.to_thread(
            self._store.record_capability_evidence,
            cap.id,
            cap.updated_at,
            status,
            error,
            now_millis(),
        )

    async def _apply_one(
        self, ctx: _Ctx, cap: Capability, skill_dirs: list[str]
    ) -> tuple[str, str | None]:
        if cap.kind == "cli":
            return await self._validate_cli(ctx, cap)
        if cap.kind == "package":
            return await self._install_package(ctx, cap)
        if not ctx.persistent:
            return "failed", (
                f"{cap.kind} capabilities live in the agent's home, which is not persistent"
                " (runtimePolicy.storagePolicy.persistent is false)"
            )
        if cap.kind == "skill":
            return await self._skill(ctx, cap, skill_dirs)
        if cap.kind == "mcp_server":
            return await self._mcp(ctx)
        return "failed", f"unknown capability kind {cap.kind!r}"

    async def _skill(
        self, ctx: _Ctx, cap: Capability, skill_dirs: list[str]
    ) -> tuple[str, str | None]:
        plan = cap.spec.get("installPlan") or {}
        staged = ctx.run_dir / "stage" / cap.name
        try:
            await asyncio.to_thread(
                stage_skill,
                cap.spec["source"],
                plan.get("skillName") or cap.name,
                staged,
                ctx.owner,
            )
        except FetchError as exc:
            return "failed", str(exc)
        except OSError as exc:
            log.warning("staging skill %s failed: %s", cap.id, exc)
            return "failed", "the skill could not be staged on the worker"
        done = await self._sh(
            ctx, scripts.INSTALL_SKILL, [cap.name, f"{ctx.inner_stage}/{cap.name}", *skill_dirs]
        )
        if done.exit_code != 0:
            return "failed", f"copying the skill into the home failed: {_tail(done)}"
        return "projected", None

    async def _validate_cli(self, ctx: _Ctx, cap: Capability) -> tuple[str, str | None]:
        plan = cap.spec.get("validationPlan") or {}
        exe = str(plan.get("executable", cap.name))
        args = [str(a) for a in plan.get("versionArgs") or []]
        done = await self._sh(ctx, scripts.VALIDATE_CLI, [exe, *args], timeout=60.0)
        if done.exit_code == 0:
            return "validated", None
        if done.exit_code == scripts.NOT_FOUND and scripts.NOT_FOUND_MARK.encode() in (
            done.stderr_tail
        ):
            return "failed", f"executable {exe!r} not found in the agent's environment"
        if done.timed_out:
            return "failed", f"'{exe}' did not exit within 60 s"
        return "failed", f"'{' '.join([exe, *args])}' exited with status {done.exit_code}"

    async def _install_package(self, ctx: _Ctx, cap: Capability) -> tuple[str, str | None]:
        plan = cap.spec.get("installPlan") or {}
        mode = ctx.policy.network_policy.mode
        if mode is NetworkMode.DENY_ALL:
            return "failed", (
                "package installs need network egress, but the agent's"
                " runtimePolicy.networkPolicy.mode is 'deny_all'; use 'allow_all', or"
                " 'allowlist' with the package registry's domains"
            )
        packages = [str(p) for p in plan.get("packages") or []]
        done = await self._sh(
            ctx,
            scripts.INSTALL_PACKAGES,
            [str(plan.get("manager")), *packages],
            timeout=INSTALL_TIMEOUT_S,
        )
        if done.exit_code == 0:
            return "available", None
        return "failed", f"{plan.get('manager')} install failed: {_tail(done)}"

    async def _mcp(self, ctx: _Ctx) -> tuple[str, str | None]:
        caps = await asyncio.to_thread(
            self._store.list_capabilities, ctx.agent.workspace_id, ctx.agent.id
        )
        servers: dict[str, object] = {}
        for cap in caps:
            if cap.kind != "mcp_server" or cap.status != "declared":
                continue
            server = cap.spec.get("mcpServer") or {}
            command = list(server.get("command") or [])
            env: dict[str, str] = {}
            for key, value in (server.get("env") or {}).items():
                if isinstance(value, dict):
                    secret = await asyncio.to_thread(
                        self._store.get_secret, ctx.agent.workspace_id, value["secret"]
                    )
                    env[key] = "${" + (secret.projection_name if secret else key) + "}"
                else:
                    env[key] = str(value)
            servers[cap.name] = {"command": command[0], "args": command[1:], "env": env}
        path = ctx.run_dir / "stage" / "mcp.json"
        await asyncio.to_thread(path.write_text, json.dumps({"mcpServers": servers}, indent=2))
        if ctx.owner is not None:
            await asyncio.to_thread(chown_tree, path, ctx.owner)
        done = await self._sh(ctx, scripts.WRITE_MCP, [f"{ctx.inner_stage}/mcp.json"])
        if done.exit_code != 0:
            return "failed", f"writing ~/.agents/mcp.json failed: {_tail(done)}"
        return "projected", None

    async def _sh(
        self, ctx: _Ctx, script: str, args: list[str], timeout: float = STEP_TIMEOUT_S
    ) -> ProcessResult:
        """Run ``script`` with ``args`` as the agent, inside its sandbox."""
        ctx.steps += 1
        spec = ProcessSpec(
            argv=["/bin/bash", "-c", script, "runyard-reconcile", *args],
            home=ctx.home,
            run_dir=ctx.run_dir,
            cwd=".",
            env=dict(ENV),
            timeout_seconds=timeout,
            max_output_bytes=65_536,
            policy=ctx.policy,
            agent_id=ctx.agent.id,
            run_id=f"{ctx.run_dir.name}-{ctx.steps}",
            ephemeral_home=not ctx.persistent,
        )
        return await self._substrate.run(spec, asyncio.Event())


def _private_dir(path: Path, owner: int | None) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if owner is not None:
        os.chown(path, owner, owner)


def _tail(result: ProcessResult) -> str:
    if result.timed_out:
        return "timed out"
    lines = result.stderr_tail.decode(errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else f"exit status {result.exit_code}"
