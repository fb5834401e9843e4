"""The HTTP side of a benchmark: clients, the test agent, and the operations that get timed.

Why: ``bench_exec.py`` and ``bench_sandbox.py`` time the same calls
(``POST /v1/agents/{id}/exec`` with input ``true``, ``GET /healthz``) against
runyard targets, and must set them up the same way (an agent, its
environment ready, one admitted exec) so that their numbers mean the same.
Each bench client is its own ``httpx.AsyncClient`` with one keep-alive
connection; failures are counted and the first few kept as samples.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from load import Op
from servers import Target

ADMISSION_SECONDS = 60.0
READY_SECONDS = 120.0
EXEC_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


class Runtime:
    """HTTP clients for one target: one ``AsyncClient`` (one connection) per bench client."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.agent_id = ""
        self.agent_slug = ""
        self.failures: list[str] = []
        self._clients: list[httpx.AsyncClient] = []

    def client(self) -> httpx.AsyncClient:
        made = httpx.AsyncClient(
            base_url=self.target.base_url,
            headers={"Authorization": f"Bearer {self.target.key}"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=EXEC_TIMEOUT,
        )
        self._clients.append(made)
        return made

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients), return_exceptions=True)

    def _failed(self, what: str, detail: str) -> bool:
        if len(self.failures) < 3:
            self.failures.append(f"{self.target.label} {what}: {detail[:300]}")
        return False

    def exec_op(self, http: httpx.AsyncClient) -> Op:
        url = f"/v1/agents/{self.agent_id}/exec"

        async def op() -> bool:
            try:
                resp = await http.post(url, json={"input": "true"})
            except httpx.HTTPError as exc:
                return self._failed("exec", repr(exc))
            if resp.status_code != 200:
                return self._failed("exec", f"{resp.status_code} {resp.text}")
            return True

        return op

    def healthz_op(self, http: httpx.AsyncClient) -> Op:
        async def op() -> bool:
            try:
                resp = await http.get("/healthz")
            except httpx.HTTPError as exc:
                return self._failed("healthz", repr(exc))
            return resp.status_code == 200 or self._failed("healthz", str(resp.status_code))

        return op

    async def create_agent(
        self, max_concurrency: int, runtime_policy: dict[str, Any] | None = None
    ) -> None:
        """Create the bench agent (harness ``shell``); ``runtime_policy`` adds to its policy."""
        http = self.client()
        policy = {**(runtime_policy or {}), "maxConcurrentRuns": max_concurrency}
        resp = await http.post(
            f"/v1/workspaces/{self.target.workspace}/agents",
            json={"name": "bench", "runtimePolicy": policy},
        )
        if resp.status_code != 201:
            raise RuntimeError(f"creating the agent failed: {resp.status_code} {resp.text}")
        agent = resp.json()["agent"]
        self.agent_id = agent["id"]
        self.agent_slug = agent["slug"]

    async def wait_ready(self) -> None:
        """Poll the agent until its environment is ``ready`` (provisioned by the worker)."""
        http = self.client()
        url = f"/v1/workspaces/{self.target.workspace}/agents/{self.agent_slug}"
        deadline = time.monotonic() + READY_SECONDS
        while True:
            resp = await http.get(url)
            if resp.status_code != 200:
                raise RuntimeError(f"reading the agent failed: {resp.status_code} {resp.text}")
            env = resp.json()["environment"]
            if env["status"] == "ready":
                return
            if env["status"] == "failed" or time.monotonic() > deadline:
                raise RuntimeError(f"environment not ready: {env}")
            self.target.check_alive()
            await asyncio.sleep(0.1)

    async def admit(self) -> None:
        """First exec provisions the environment; retry its 503 until one run completes."""
        http = self.client()
        deadline = time.monotonic() + ADMISSION_SECONDS
        while True:
            resp = await http.post(f"/v1/agents/{self.agent_id}/exec", json={"input": "true"})
            if resp.status_code == 200:
                return
            retryable = resp.status_code == 503 and '"retryable":true' in resp.text.replace(" ", "")
            if not retryable or time.monotonic() > deadline:
                raise RuntimeError(f"first exec failed: {resp.status_code} {resp.text}")
            self.target.check_alive()
            await asyncio.sleep(0.2)
