"""Model access for one run: the gateway session its harness talks to.

When the agent's model policy names a provider and a model, the worker opens
a gateway session on a socket in the run's private directory (owned by the
agent's sandbox uid); the substrate exposes it inside the sandbox as an HTTP
endpoint. The provider key comes from the agent's secrets and stays in the
worker. After the run, the session's metered usage becomes the run's
``tokenUsage`` and its call records go into the run's evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.domain.entities import Agent, Run
from runyard.domain.policies import ModelPolicy
from runyard.gateway.policy import GatewayPolicy
from runyard.gateway.session import Gateway, GatewaySession
from runyard.sandbox.base import ShortUnixPath

SOCKET_NAME = "gateway.sock"


@dataclass
class ModelAccess:
    session: GatewaySession
    socket: Path
    model: str
    alias: ShortUnixPath

    def token_usage(self) -> dict[str, Any] | None:
        return self.session.token_usage() if self.session.calls else None

    def calls(self) -> list[dict[str, Any]]:
        return list(self.session.calls)

    def live_calls(self) -> list[dict[str, Any]]:
        """Ended calls and calls still in flight (for the live canvas)."""
        return [*self.session.calls, *self.session.ledger.in_flight()]

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) whenever a model call begins or ends."""
        self.session.ledger.on_change = callback

    async def close(self) -> None:
        try:
            await self.session.close()
        finally:
            self.alias.__exit__()


def configured(agent: Agent) -> bool:
    policy = ModelPolicy.model_validate(agent.model_policy)
    return policy.provider is not None and policy.model is not None


async def open_model_access(
    gateway: Gateway,
    agent: Agent,
    run: Run,
    *,
    run_dir: Path,
    owner: int | None,
    provider_key: str | None,
) -> ModelAccess | None:
    """A session for this run, or None when the agent has no model configured."""
    policy = ModelPolicy.model_validate(agent.model_policy)
    if policy.provider is None or policy.model is None:
        return None
    model = str(run.request.get("model") or policy.model)
    gateway_policy = GatewayPolicy.from_model_policy(
        policy, run_id=run.id, api_key=provider_key
    ).with_model(model)
    socket = run_dir / SOCKET_NAME
    # The session binds through a short alias when the run dir is deep; the
    # alias (an open directory fd) must outlive the session.
    alias = ShortUnixPath(run_dir, SOCKET_NAME)
    try:
        session = await gateway.open(alias.__enter__(), gateway_policy, owner_uid=owner)
    except BaseException:
        alias.__exit__()
        raise
    return ModelAccess(session=session, socket=socket, model=model, alias=alias)
