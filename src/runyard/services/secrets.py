"""Workspace secrets: sealed at rest, masked on read, opened only for a run.

A secret has a name (in the URL), a projection name (the environment
variable it becomes, e.g. ``OPENAI_API_KEY``), a value submitted once and
never returned, and the agents it is bound to. For a run, the worker asks
:meth:`SecretService.for_agent`: secrets whose projection name is the agent's
provider credential go to the model gateway only; the others are projected
into the sandbox environment; all of them feed the run's redactor.
"""

from __future__ import annotations

from dataclasses import dataclass

from runyard.domain.entities import Agent, Secret
from runyard.domain.requests import SecretPut
from runyard.errors import BadRequest, NotFound
from runyard.secrets_box import SecretBox
from runyard.store.base import Store
from runyard.types import new_id, now_millis

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"

# The projection names that carry a model provider's key: never into a sandbox.
PROVIDER_CREDENTIALS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openai-compatible": "OPENAI_API_KEY",
}


@dataclass(frozen=True)
class RunSecrets:
    provider_key: str | None
    environment: dict[str, str]
    redact: list[tuple[str, str]]


class SecretService:
    def __init__(self, store: Store, box: SecretBox) -> None:
        self._store = store
        self._box = box

    @staticmethod
    def _context(workspace_id: str, name: str) -> str:
        return f"{workspace_id}/{name}"

    def put(self, workspace_id: str, name: str, body: SecretPut) -> tuple[Secret, bool]:
        """Create or update; returns the stored secret and whether it was created."""
        existing = self._store.get_secret(workspace_id, name)
        if existing is None and body.value is None:
            raise BadRequest("value is required when creating a secret", {"field": "value"})
        for agent_id in body.agent_ids:
            if self._store.get_agent(workspace_id, agent_id=agent_id) is None:
                raise BadRequest(f"agent {agent_id!r} not found", {"field": "agentIds"})
        now = now_millis()
        if body.value is not None:
            ciphertext = self._box.seal(body.value, self._context(workspace_id, name))
            length = len(body.value)
        else:
            assert existing is not None
            ciphertext, length = existing.ciphertext, existing.value_length
        saved = self._store.put_secret(
            Secret(
                id=existing.id if existing else new_id("secret"),
                workspace_id=workspace_id,
                name=name,
                projection_name=body.projection_name,
                ciphertext=ciphertext,
                value_length=length,
                agent_ids=sorted(set(body.agent_ids)),
                created_at=existing.created_at if existing else now,
                updated_at=now,
            )
        )
        return saved, existing is None

    def get(self, workspace_id: str, name: str) -> Secret:
        found = self._store.get_secret(workspace_id, name)
        if found is None:
            raise NotFound(f"secret {name!r} not found")
        return found

    def list(self, workspace_id: str) -> list[Secret]:
        return self._store.list_secrets(workspace_id)

    def delete(self, workspace_id: str, name: str) -> None:
        if not self._store.delete_secret(workspace_id, name):
            raise NotFound(f"secret {name!r} not found")

    def for_agent(self, agent: Agent) -> RunSecrets:
        """Open the agent's secrets for one run (worker side only)."""
        provider = (agent.model_policy or {}).get("provider")
        credential = PROVIDER_CREDENTIALS.get(provider or "")
        key: str | None = None
        env: dict[str, str] = {}
        redact: list[tuple[str, str]] = []
        for secret in self._store.list_secrets(agent.workspace_id):
            if agent.id not in secret.agent_ids:
                continue
            value = self._box.open(
                secret.ciphertext, self._context(agent.workspace_id, secret.name)
            )
            redact.append((secret.projection_name, value))
            if secret.projection_name == credential:
                key = value
            else:
                env[secret.projection_name] = value
        return RunSecrets(provider_key=key, environment=env, redact=redact)
