"""Every SDK method, written once for both clients.

:class:`Operations` is generic in what a method returns: the sync client
returns the document itself, the async client returns a coroutine of it.
Each method builds a plan (see :mod:`runyard.sdk.core`) and hands it to
``_drive``, the only thing the two clients implement differently.

An ``agent`` argument is a slug or an ``agent_…`` id (a slug cannot contain
``_``, so the two never collide). The control plane addresses agents by
slug and the runtime API by id, so a plan resolves whichever it was not
given: a slug through ``GET …/agents/{slug}``, an id by paging the agent list.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote, urlsplit

from runyard import __version__
from runyard.domain.entities import SOURCE_HEADER
from runyard.errors import ConfigError, Forbidden, NotFound
from runyard.sdk.config import resolve_connection
from runyard.sdk.core import Document, Plan, RequestSpec, field_of, one

R = TypeVar("R")

AGENT_ID_PREFIX = "agent_"
DEFAULT_TIMEOUT = 30.0
EXEC_WAIT_CEILING = 3600
"""Longest run runyard accepts; the wait for ``/exec`` without ``timeoutSeconds``."""
EXEC_WAIT_MARGIN = 60
"""Extra seconds the client waits on ``/exec`` beyond the run's own timeout."""
_PAGE = 100


def _seg(value: str) -> str:
    return quote(value, safe="")


def _fields(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Operations(Generic[R]):
    """Connection settings plus the API methods; subclasses supply the transport."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        workspace: str = "default",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        source: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"base URL must look like http://host:port, got {base_url!r}")
        if not api_key:
            raise ConfigError("an API key is required")
        if not workspace:
            raise ConfigError("a workspace slug is required")
        self.base_url = base_url.rstrip("/")
        self.workspace = workspace
        self.timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": f"runyard-sdk/{__version__}",
        }
        if source is not None:
            # Where the runs this client creates come from (API, CLI, WEB_APP).
            self._headers[SOURCE_HEADER] = source

    @classmethod
    def discover(
        cls,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        workspace: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Self:
        """A client from explicit values, else ``RUNYARD_*``, else ``credentials.json``.

        ``options`` go to the constructor (``transport``, ``timeout``).
        """
        conn = resolve_connection(
            base_url=base_url, api_key=api_key, workspace=workspace, data_dir=data_dir, env=env
        )
        return cls(conn.base_url, conn.api_key, conn.workspace, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, workspace={self.workspace!r})"

    def _drive(self, plan: Plan) -> R:
        raise NotImplementedError

    # -- paths and agent resolution ------------------------------------------

    def _agents_path(self, slug: str | None = None) -> str:
        base = f"/v1/workspaces/{_seg(self.workspace)}/agents"
        return base if slug is None else f"{base}/{_seg(slug)}"

    def _slug_of(self, agent: str) -> Generator[RequestSpec, Document, str]:
        """The control-plane slug of ``agent`` (a slug is returned as it is)."""
        if not agent.startswith(AGENT_ID_PREFIX):
            return agent
        cursor = None
        while True:
            page = yield RequestSpec("GET", self._agents_path(), {"limit": _PAGE, "cursor": cursor})
            for item in field_of(page, "agents"):
                if field_of(item, "agent", "id") == agent:
                    slug: str = field_of(item, "agent", "slug")
                    return slug
            cursor = page.get("nextCursor")
            if not page.get("hasMore") or not cursor:
                raise NotFound(f"agent {agent!r} not found")

    def _id_of(self, agent: str) -> Generator[RequestSpec, Document, str]:
        """The runtime id of ``agent`` (an id is returned as it is)."""
        if agent.startswith(AGENT_ID_PREFIX):
            return agent
        try:
            doc = yield RequestSpec("GET", self._agents_path(agent))
        except Forbidden as err:
            raise Forbidden(
                f"{err.message}; with an agent runtime key, name the agent by its id (agent_…)",
                err.data,
            ) from err
        agent_id: str = field_of(doc, "agent", "id")
        return agent_id

    def _runtime(self, agent: str, tail: str, **spec: Any) -> Plan:
        agent_id = yield from self._id_of(agent)
        return (yield RequestSpec(path=f"/v1/agents/{_seg(agent_id)}/{tail}", **spec))

    def _control(self, agent: str, tail: str, **spec: Any) -> Plan:
        slug = yield from self._slug_of(agent)
        path = self._agents_path(slug) + (f"/{tail}" if tail else "")
        return (yield RequestSpec(path=path, **spec))

    # -- control plane ---------------------------------------------------------

    def list_agents(self, *, limit: int | None = None, cursor: str | None = None) -> R:
        """``{agents: [{agent, environment}], hasMore, nextCursor}``, newest first."""
        spec = RequestSpec("GET", self._agents_path(), _fields(limit=limit, cursor=cursor))
        return self._drive(one(spec))

    def create_agent(
        self,
        name: str,
        *,
        slug: str | None = None,
        model_policy: dict[str, Any] | None = None,
        harness_targets: list[dict[str, Any]] | None = None,
        runtime_policy: dict[str, Any] | None = None,
    ) -> R:
        """Create an agent and queue its environment: ``{agent, environment}``."""
        body = _fields(
            name=name,
            slug=slug,
            modelPolicy=model_policy,
            harnessTargets=harness_targets,
            runtimePolicy=runtime_policy,
        )
        return self._drive(one(RequestSpec("POST", self._agents_path(), body=body)))

    def get_agent(self, agent: str) -> R:
        """``{agent, environment}`` of a slug or an ``agent_…`` id."""
        return self._drive(self._control(agent, "", method="GET"))

    def update_agent(
        self,
        agent: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        model_policy: dict[str, Any] | None = None,
        runtime_policy: dict[str, Any] | None = None,
    ) -> R:
        """PATCH the agent; a new ``name`` also changes the slug unless ``slug`` is given."""
        body = _fields(name=name, slug=slug, modelPolicy=model_policy, runtimePolicy=runtime_policy)
        return self._drive(self._control(agent, "", method="PATCH", body=body))

    def rename_agent(self, agent: str, name: str) -> R:
        """Rename the agent; the returned ``agent.slug`` is its new slug."""
        return self.update_agent(agent, name=name)

    def delete_agent(self, agent: str, *, confirmation_slug: str) -> R:
        """Delete the agent; ``confirmation_slug`` must equal its current slug."""
        body = {"confirmationSlug": confirmation_slug}
        return self._drive(self._control(agent, "", method="DELETE", body=body))

    def set_harnesses(self, agent: str, harness_targets: list[dict[str, Any]]) -> R:
        """Replace the complete set of harness targets (``{harnessName, enabled, role}``)."""
        body = {"harnessTargets": harness_targets}
        return self._drive(self._control(agent, "harnesses", method="PATCH", body=body))

    def create_key(self, agent: str, *, name: str | None = None) -> R:
        """Issue a runtime key for the agent: ``{key, secret}``; the secret is shown once."""
        body = _fields(name=name)
        return self._drive(self._control(agent, "keys", method="POST", body=body))

    def list_keys(self, agent: str) -> R:
        """``{keys: [...]}``: the agent's runtime keys, revoked ones included."""
        return self._drive(self._control(agent, "keys", method="GET"))

    def revoke_key(self, agent: str, key_id: str) -> R:
        """Revoke one of the agent's runtime keys: ``{key}``."""
        return self._drive(self._control(agent, f"keys/{_seg(key_id)}", method="DELETE"))

    # -- runtime ---------------------------------------------------------------

    def status(self, agent: str) -> R:
        """``{daemonVersion, ok, status}``: whether the agent's runtime is ready."""
        return self._drive(self._runtime(agent, "status", method="GET"))

    def exec(
        self,
        agent: str,
        input: str,
        *,
        harness: str | None = None,
        session_id: str | None = None,
        timeout_seconds: int | None = None,
        workspace_path: str | None = None,
        cwd: str | None = None,
    ) -> R:
        """Run ``input`` and wait for it: ``{output: {text}, runId, harness, sessionId, warnings}``.

        A run that fails, times out or is cancelled raises its error
        (``RunFailed``, ``RunTimedOut``, ``RunCancelled``, ``RunStillRunning``)
        with ``data["runId"]``. ``workspace_path`` is the request's ``workspace``
        field (a relative path in the agent's home), not the workspace slug.
        """
        body = _fields(
            input=input,
            harness=harness,
            sessionId=session_id,
            timeoutSeconds=timeout_seconds,
            workspace=workspace_path,
            cwd=cwd,
        )
        wait = (timeout_seconds or EXEC_WAIT_CEILING) + EXEC_WAIT_MARGIN
        return self._drive(self._runtime(agent, "exec", method="POST", body=body, timeout=wait))

    def list_runs(self, agent: str, *, limit: int | None = None, cursor: str | None = None) -> R:
        """``{runs, hasMore, nextCursor}``: the agent's support-safe run history."""
        params = _fields(limit=limit, cursor=cursor)
        return self._drive(self._runtime(agent, "runs", method="GET", params=params))

    def get_run(self, agent: str, run_id: str) -> R:
        """``{run}``: one support-safe run document."""
        return self._drive(self._runtime(agent, f"runs/{_seg(run_id)}", method="GET"))

    # -- asynchronous runs -----------------------------------------------------

    def submit_run(
        self,
        agent: str,
        input: str,
        *,
        title: str | None = None,
        idempotency_key: str | None = None,
        harness: str | None = None,
        session_id: str | None = None,
        timeout_seconds: int | None = None,
        workspace_path: str | None = None,
        cwd: str | None = None,
    ) -> R:
        """Queue a run without waiting: ``{runId, status, pollUrl}``.

        With ``idempotency_key`` a retried call returns the run the first one
        queued; reusing the key for a different request raises ``Conflict``.
        """
        body = _fields(
            input=input,
            title=title,
            harness=harness,
            sessionId=session_id,
            timeoutSeconds=timeout_seconds,
            workspace=workspace_path,
            cwd=cwd,
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._drive(self._runtime(agent, "runs", method="POST", body=body, headers=headers))

    def cancel_run(self, agent: str, run_id: str) -> R:
        """Cancel a run: ``{runId, status, cancelRequested}``; an ended run raises ``Conflict``."""
        return self._drive(self._runtime(agent, f"runs/{_seg(run_id)}/cancel", method="POST"))

    def list_run_events(
        self, agent: str, run_id: str, *, since: int | None = None, limit: int | None = None
    ) -> R:
        """``{events: [{seq, type, data, createdAt}], nextSince}``: events after ``since``."""
        params = _fields(since=since, limit=limit)
        return self._drive(
            self._runtime(agent, f"runs/{_seg(run_id)}/events", method="GET", params=params)
        )

    def get_run_canvas(self, agent: str, run_id: str) -> R:
        """``{canvasId, runId, status, progress, blocks, edges}``: the run's step DAG."""
        return self._drive(self._runtime(agent, f"runs/{_seg(run_id)}/canvas", method="GET"))

    def list_run_artifacts(self, agent: str, run_id: str) -> R:
        """``{artifacts: [{id, name, type, sizeBytes, sha256, downloadUrl, …}]}``."""
        return self._drive(self._runtime(agent, f"runs/{_seg(run_id)}/artifacts", method="GET"))

    def _agent_id(self, agent: str) -> Plan:
        agent_id = yield from self._id_of(agent)
        return {"id": agent_id}
