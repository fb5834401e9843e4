"""Executes one claimed run: prepare, start, supervise with heartbeats, finish.

The steps: place the run's files (the harness's private files, uploaded
inputs) and mark it running; open its secrets and model gateway; supervise
the process in the sandbox while a :class:`LeaseKeeper` keeps the lease, the
live canvas follows the model calls and stdout streams as events; then
interpret the result, collect the artifacts and write the outcome.

Every write is fenced by the run's lease token; if the lease is lost (the
reaper took the run, or the store moved on) the executor kills the process
and writes nothing more. A cancel request is noticed when the run's event
log grows, and at the latest on the next heartbeat. Any unexpected failure
still ends the run ``failed`` with a generic ``internal_error``: a claimed
run is never left hanging by this process.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from runyard.artifacts.blobs import ArtifactBlobs
from runyard.domain.entities import Agent, Run, RunOutcome
from runyard.domain.policies import RuntimePolicy
from runyard.environments.homes import resolve_workdir
from runyard.errors import HarnessUnavailable, PathEscape, SandboxUnavailable
from runyard.gateway.errors import GatewayError
from runyard.gateway.session import Gateway
from runyard.harness.base import Harness, HarnessContext, HarnessRegistry
from runyard.redaction import Redactor
from runyard.sandbox.base import ProcessResult, ProcessSpec, Substrate
from runyard.services.agents import parse_runtime_policy
from runyard.services.notify import RunSignals
from runyard.services.secrets import RunSecrets, SecretService
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis
from runyard.worker.canvas import LiveCanvas
from runyard.worker.files import Before, RunFiles
from runyard.worker.lease_keeper import LeaseKeeper, relay
from runyard.worker.live_output import OutputStream
from runyard.worker.model_access import ModelAccess, open_model_access
from runyard.worker.outcomes import (
    BASE_ENV,
    failure,
    make_private_dir,
    policy_evidence,
    redacted,
    write_private_files,
)

log = logging.getLogger("runyard.worker")


class Executor:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        substrate: Substrate,
        harnesses: HarnessRegistry,
        *,
        secrets: SecretService | None = None,
        gateway: Gateway | None = None,
        signals: RunSignals | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._substrate = substrate
        self._harnesses = harnesses
        self._secrets = secrets
        self._gateway = gateway
        self._signals = signals
        self._shutdown = asyncio.Event()
        self._outputs = RunFiles(settings, ArtifactBlobs(settings.artifacts_dir))

    @property
    def substrate(self) -> Substrate:
        return self._substrate

    def begin_shutdown(self) -> None:
        """Kill every run in flight; they end ``failed`` with retryable ``worker_shutdown``."""
        self._shutdown.set()

    @property
    def evidence(self) -> dict[str, object]:
        return {"substrateProvider": self._substrate.name, "stateCandidateCount": 0}

    async def execute(self, run: Run, lease_token: str) -> None:
        try:
            await self._execute(run, lease_token)
        except Exception:
            log.exception("run %s failed inside the worker", run.id)
            await self._finish(
                run,
                lease_token,
                failure("internal_error", "runyard failed to execute the run", True),
            )

    async def _finish(
        self,
        run: Run,
        lease_token: str,
        outcome: RunOutcome,
        *,
        complete: Callable[[RunOutcome], RunOutcome] | None = None,
    ) -> None:
        """Write the outcome; ``complete`` (disk work: artifacts) runs first, in the
        same worker thread as the write."""
        outcome = replace(outcome, evidence={**self.evidence, **(outcome.evidence or {})})

        def write() -> bool:
            final = complete(outcome) if complete is not None else outcome
            return self._store.finish_run(run.id, lease_token, final, now_millis())

        written = await asyncio.to_thread(write)
        if not written:
            log.warning("run %s: lease lost before the final write; result dropped", run.id)

    async def _execute(self, run: Run, lease_token: str) -> None:
        agent = await asyncio.to_thread(
            self._store.get_agent, run.workspace_id, agent_id=run.agent_id
        )
        if agent is None:
            await self._finish(run, lease_token, failure("agent_deleted", "the agent was deleted"))
            return
        try:
            harness = self._harnesses.get(run.harness_resolved or "")
            self._substrate.check()
        except HarnessUnavailable as exc:
            await self._finish(run, lease_token, failure("harness_unavailable", str(exc)))
            return
        except SandboxUnavailable as exc:
            await self._finish(run, lease_token, failure("sandbox_unavailable", exc.message))
            return
        policy = parse_runtime_policy(agent)
        owner = self._substrate.owner_of(agent.id)
        # One directory per attempt: a stale worker whose claim was rescued
        # removes its own directory, never the one the current attempt runs in.
        run_dir = self._substrate.run_dir(f"{run.id}-{run.attempt}")
        ephemeral = not policy.storage_policy.persistent
        try:
            await asyncio.to_thread(make_private_dir, run_dir, owner)
            if ephemeral:
                home = run_dir / "home"
                await asyncio.to_thread(make_private_dir, home, owner)
            else:
                try:
                    home = await asyncio.to_thread(self._substrate.prepare_home, agent.id, policy)
                except OSError as exc:
                    log.warning("run %s: cannot prepare the home of %s: %s", run.id, agent.id, exc)
                    await self._finish(
                        run,
                        lease_token,
                        failure("environment_failed", "the agent's home could not be prepared"),
                    )
                    return
            try:
                cwd = await asyncio.to_thread(
                    resolve_workdir,
                    home,
                    run.request.get("workspace"),
                    run.request.get("cwd"),
                    owner,
                )
            except PathEscape as exc:
                await self._finish(run, lease_token, failure("invalid_path", str(exc)))
                return
            await self._run_in_sandbox(
                run,
                lease_token,
                agent,
                harness,
                home=home,
                cwd=cwd,
                run_dir=run_dir,
                policy=policy,
                owner=owner,
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)

    async def _run_in_sandbox(
        self,
        run: Run,
        lease_token: str,
        agent: Agent,
        harness: Harness,
        *,
        home: Path,
        cwd: str,
        run_dir: Path,
        policy: RuntimePolicy,
        owner: int | None,
    ) -> None:
        ctx = HarnessContext(run=run, agent=agent, paths=self._substrate.paths(home, run_dir))
        try:
            invocation = harness.invocation(ctx)
        except HarnessUnavailable as exc:
            await self._finish(run, lease_token, failure("harness_unavailable", str(exc)))
            return
        live = LiveCanvas(self._store, run.id, lease_token)

        def begin() -> tuple[Before, bool]:
            """Files in place, then the run marked running (one thread hop for both)."""
            write_private_files(run_dir, invocation.files, owner)
            before = self._outputs.prepare(run, home, cwd, owner)
            started = self._store.start_run(
                run.id, lease_token, now_millis(), harness.name, self.evidence
            )
            return before, started

        try:
            before, started = await asyncio.to_thread(begin)
        except (PathEscape, ValueError, FileNotFoundError) as exc:
            message = exc.message if isinstance(exc, PathEscape) else "an input file is missing"
            await self._finish(run, lease_token, failure("invalid_input", message))
            return
        if not started:
            log.warning("run %s: lease lost before start; not executing", run.id)
            return
        opened = await asyncio.to_thread(self._secrets.for_agent, agent) if self._secrets else None
        redactor = Redactor(opened.redact if opened else [])
        env = {
            **BASE_ENV,
            # where pip --user / npm --prefix ~/.local capability installs put tools
            "PATH": f"{ctx.paths.home}/.local/bin:{BASE_ENV['PATH']}",
            **(opened.environment if opened else {}),
            **invocation.env,
            "RUNYARD_RUN_ID": run.id,
            "RUNYARD_AGENT_ID": agent.id,
        }
        access = await self._open_model(
            agent, run, harness, run_dir=run_dir, owner=owner, opened=opened
        )
        if isinstance(access, RunOutcome):
            await self._finish(run, lease_token, access)
            return
        if access is not None:
            env["RUNYARD_MODEL"] = access.model
        spec = ProcessSpec(
            argv=invocation.argv,
            home=home,
            run_dir=run_dir,
            cwd=cwd,
            env=env,
            timeout_seconds=run.timeout_seconds,
            max_output_bytes=self._settings.max_output_bytes,
            policy=policy,
            stdin=invocation.stdin,
            agent_id=agent.id,
            run_id=f"{run.id}-{run.attempt}",  # per attempt: cgroup and socket names
            ephemeral_home=not policy.storage_policy.persistent,
            gateway_socket=access.socket if access else None,
        )
        stream = OutputStream(self._store, run.id, lease_token, redactor)
        if harness.streams_output:
            spec = replace(spec, on_output=stream.feed)
        result, lost = await self._supervise(
            run, lease_token, spec, access, live=live, stream=stream
        )
        if lost:
            log.warning("run %s: lease lost while running; process killed", run.id)
            return
        if result.cancelled and self._shutdown.is_set():
            outcome = failure("worker_shutdown", "the worker shut down during the run", True)
        else:
            outcome = harness.interpret(ctx, result)
        evidence: dict[str, object] = {"policy": policy_evidence(policy), **result.evidence}
        if access is not None:
            evidence["modelCalls"] = access.calls()
            outcome = replace(outcome, token_usage=access.token_usage() or outcome.token_usage)
        outcome = redacted(replace(outcome, evidence=evidence), redactor)
        await self._finish(
            run, lease_token, outcome, complete=lambda o: self._with_files(run, o, live, before)
        )

    def _with_files(
        self, run: Run, outcome: RunOutcome, live: LiveCanvas, before: Before
    ) -> RunOutcome:
        """The outcome with the run's artifacts and its final canvas (in a worker thread)."""
        collected = self._outputs.collect(run, before)
        if collected.warnings:
            outcome = replace(outcome, warnings=[*(outcome.warnings or []), *collected.warnings])
        steps = live.final(outcome.tool_calls)
        return replace(outcome, steps=steps, artifacts=collected.artifacts)

    async def _open_model(
        self,
        agent: Agent,
        run: Run,
        harness: Harness,
        *,
        run_dir: Path,
        owner: int | None,
        opened: RunSecrets | None,
    ) -> ModelAccess | RunOutcome | None:
        """The run's gateway session, or the failure when the harness needs one it cannot get."""
        access = None
        if self._gateway is not None:
            try:
                access = await open_model_access(
                    self._gateway,
                    agent,
                    run,
                    run_dir=run_dir,
                    owner=owner,
                    provider_key=opened.provider_key if opened else None,
                )
            except GatewayError as exc:
                return failure("model_unavailable", exc.message)
        if access is None and harness.needs_model:
            return failure(
                "model_unavailable",
                f"harness {harness.name!r} needs a model: set the agent's modelPolicy"
                " provider and model",
            )
        return access

    async def _supervise(
        self,
        run: Run,
        lease_token: str,
        spec: ProcessSpec,
        access: ModelAccess | None,
        *,
        live: LiveCanvas,
        stream: OutputStream,
    ) -> tuple[ProcessResult, bool]:
        """Run the process while keeping the lease and showing its progress (canvas,
        output); returns the result and whether the lease was lost."""
        follower = live.follow(access)
        try:
            return await self._keep_lease(run, lease_token, spec, access)
        finally:
            if follower is not None:
                follower.cancel()
            await stream.finish()

    async def _keep_lease(
        self, run: Run, lease_token: str, spec: ProcessSpec, access: ModelAccess | None
    ) -> tuple[ProcessResult, bool]:
        cancel = asyncio.Event()
        lease = LeaseKeeper(
            self._store, self._settings, run.id, lease_token, cancel, signals=self._signals
        )
        keeper = asyncio.create_task(lease.keep())
        relayed = asyncio.create_task(relay(self._shutdown, cancel))
        try:
            result = await self._substrate.run(spec, cancel)
        finally:
            keeper.cancel()
            relayed.cancel()
            if access is not None:
                await access.close()
        return result, lease.lost
