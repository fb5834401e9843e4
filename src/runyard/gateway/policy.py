"""What one gateway session may do: provider, upstream, credential and allowed models.

A :class:`GatewayPolicy` is built by the worker per run from the agent's
model policy (:class:`runyard.domain.policies.ModelPolicy`) and the provider
key it resolved from the secret store. It is a frozen value: a per-run model
override is just :meth:`GatewayPolicy.with_model`, which keeps everything
else and refuses a model outside the allowed set. The credential is never
part of the policy's ``repr``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

import httpx

from runyard.domain.policies import ModelPolicy
from runyard.gateway.errors import InvalidModelPolicy, InvalidModelRequest, ModelNotAllowed

Provider = Literal["openai", "anthropic", "openai-compatible"]
Family = Literal["openai", "anthropic"]

PROVIDERS: tuple[str, ...] = get_args(Provider)
DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}
MAX_MODEL_NAME = 200


def _header_safe(value: str) -> bool:
    return bool(value) and value.isascii() and all(33 <= ord(ch) <= 126 for ch in value)


@dataclass(frozen=True, kw_only=True)
class GatewayPolicy:
    """The policy of one gateway session.

    ``allowed_models`` always contains ``model``; ``base_url`` defaults per
    provider and is required for ``openai-compatible``. ``api_key`` may be
    ``None`` for local servers that need no credential.
    """

    provider: Provider
    model: str
    run_id: str
    api_key: str | None = field(default=None, repr=False)
    base_url: str = ""
    allowed_models: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise InvalidModelPolicy(
                f"unknown model provider {self.provider!r}; known: {', '.join(PROVIDERS)}"
            )
        if not self.model or len(self.model) > MAX_MODEL_NAME:
            raise InvalidModelPolicy("the model policy needs a model name (1-200 characters)")
        base = self.base_url or DEFAULT_BASE_URLS.get(self.provider, "")
        if not base:
            raise InvalidModelPolicy(
                f"provider {self.provider!r} needs a base URL (for example http://host:8000/v1)"
            )
        try:
            url = httpx.URL(base)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise InvalidModelPolicy("the model provider's base URL must be an http(s) URL")
        if self.api_key is not None and not _header_safe(self.api_key):
            raise InvalidModelPolicy(
                "the provider credential contains characters that cannot be sent in an HTTP"
                " header (non-ASCII, whitespace or control characters); check the secret's value"
            )
        object.__setattr__(self, "base_url", base.rstrip("/"))
        object.__setattr__(self, "allowed_models", frozenset({self.model, *self.allowed_models}))

    @classmethod
    def from_model_policy(
        cls,
        policy: ModelPolicy,
        *,
        run_id: str,
        api_key: str | None,
        base_url: str | None = None,
        allowed_models: Iterable[str] = (),
    ) -> GatewayPolicy:
        """The gateway policy for an agent's model policy (provider and model required).

        ``base_url`` (the operator's override) wins over the policy's
        ``baseUrl``, which wins over the provider's default; ``allowed_models``
        adds to the policy's ``allowedModels``.
        """
        if policy.provider is None or policy.model is None:
            raise InvalidModelPolicy(
                "the agent's model policy must name a provider and a model to use the gateway"
            )
        provider = policy.provider.strip().lower()
        if provider not in PROVIDERS:
            raise InvalidModelPolicy(
                f"unknown model provider {policy.provider!r}; known: {', '.join(PROVIDERS)}"
            )
        return cls(
            provider=provider,  # type: ignore[arg-type]  # checked against PROVIDERS above
            model=policy.model,
            run_id=run_id,
            api_key=api_key,
            base_url=base_url or policy.base_url or "",
            allowed_models=frozenset({*(policy.allowed_models or ()), *allowed_models}),
        )

    @property
    def family(self) -> Family:
        """The protocol family the upstream speaks."""
        return "anthropic" if self.provider == "anthropic" else "openai"

    def allows(self, model: str) -> bool:
        return model in self.allowed_models

    def with_model(self, model: str) -> GatewayPolicy:
        """The same policy with another default model (a per-run override)."""
        if not self.allows(model):
            raise ModelNotAllowed(_not_allowed(model, self.allowed_models))
        return dataclasses.replace(self, model=model)

    def resolve_model(self, requested: object) -> str:
        """The model a request may use: its own if allowed, the default if it names none."""
        if requested is None or requested == "":
            return self.model
        if not isinstance(requested, str):
            raise InvalidModelRequest('"model" must be a string')
        if not self.allows(requested):
            raise ModelNotAllowed(_not_allowed(requested, self.allowed_models))
        return requested


def _not_allowed(model: str, allowed: frozenset[str]) -> str:
    shown = model if len(model) <= 100 else model[:99] + "…"
    return (
        f"model {shown!r} is not allowed by this agent's model policy; "
        f"allowed: {', '.join(sorted(allowed))}"
    )
