"""Agent policies as validated value objects.

Model policy, harness targets and runtime policy (resources, network,
storage) are pydantic models with ``extra="forbid"``: the API accepts them
as request bodies, the store keeps them as JSON, the worker enforces them.
Their wire names are the reference's camelCase names.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runyard.errors import BadRequest

KNOWN_HARNESSES: tuple[str, ...] = (
    "shell",
    "command",
    "native",
    "openclaw",
    "hermes",
    "claude-code",
    "codex",
    "gemini",
)

_DOMAIN_RE = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class Strict(BaseModel):
    """Base for wire models: unknown fields are an error, never dropped.

    Types are strict too: ``"5"`` is not an integer and ``1`` is not a
    boolean. Enum fields opt back into matching their string values
    (``Field(strict=False)``), since JSON has no enum type.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    def changes(self, not_null: tuple[str, ...] = ()) -> dict[str, Any]:
        """The fields a PATCH body sets, by name; ``null`` for one of ``not_null``
        is a 400 (leaving a field out keeps it, ``null`` would erase it)."""
        found: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None and name in not_null:
                raise BadRequest(f"{name} must not be null", {"field": name})
            found[name] = value
        return found


PROVIDERS = ("openai", "anthropic", "openai-compatible")


class ModelPolicy(Strict):
    """Which model an agent may use, through which provider (see the model gateway)."""

    provider: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    # Optional extensions: absent from documents unless set (the reference shows
    # only provider and model).
    base_url: str | None = Field(
        default=None,
        alias="baseUrl",
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        exclude_if=lambda v: v is None,
    )
    allowed_models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, alias="allowedModels", max_length=64, exclude_if=lambda v: v is None
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        if value is not None and value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(PROVIDERS)}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> ModelPolicy:
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError('provider "openai-compatible" needs "baseUrl"')
        return self

    def allows(self, model: str) -> bool:
        return model == self.model or model in (self.allowed_models or [])


class HarnessRole(StrEnum):
    DEFAULT = "default"
    AVAILABLE = "available"


class HarnessTarget(Strict):
    harness_name: str = Field(alias="harnessName", min_length=1, max_length=64)
    enabled: bool = True
    role: HarnessRole = Field(default=HarnessRole.AVAILABLE, strict=False)
    # Only for harness "command": the argv run inside the sandbox (prompt on stdin).
    command: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        default=None, min_length=1, max_length=64
    )

    @field_validator("harness_name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in KNOWN_HARNESSES:
            raise ValueError(
                f"unknown harness {value!r}; known harnesses: {', '.join(KNOWN_HARNESSES)}"
            )
        return value

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any("\x00" in part for part in value):
            raise ValueError("command arguments must not contain NUL characters")
        return value

    @model_validator(mode="after")
    def _command_only_for_command(self) -> HarnessTarget:
        if self.harness_name == "command" and self.enabled and not self.command:
            raise ValueError('harness "command" needs "command": the argv to run')
        if self.harness_name != "command" and self.command is not None:
            raise ValueError('"command" is only valid for harness "command"')
        return self


def check_harness_targets(targets: list[HarnessTarget]) -> list[HarnessTarget]:
    """Apply the reference's rules to a complete set of harness targets."""
    names = [t.harness_name for t in targets]
    if len(set(names)) != len(names):
        raise ValueError("each harness may appear only once in harnessTargets")
    defaults = [t for t in targets if t.role is HarnessRole.DEFAULT]
    if len(defaults) > 1:
        raise ValueError('at most one harness target may use role "default"')
    enabled = [t for t in targets if t.enabled]
    if enabled and not any(t.enabled for t in defaults):
        raise ValueError('an enabled set of harnesses must include exactly one enabled "default"')
    return targets


def default_harness(targets: list[HarnessTarget]) -> str | None:
    for t in targets:
        if t.enabled and t.role is HarnessRole.DEFAULT:
            return t.harness_name
    return None


def enabled_harnesses(targets: list[HarnessTarget]) -> list[str]:
    return [t.harness_name for t in targets if t.enabled]


class ResourceLimits(Strict):
    memory_mib: int = Field(default=2048, alias="memoryMiB", ge=64, le=262_144)
    disk_gib: int = Field(default=4, alias="diskGiB", ge=1, le=1024)
    cpus: float = Field(default=1.0, ge=0.1, le=64)
    pids: int = Field(default=512, ge=16, le=65_536)


class NetworkMode(StrEnum):
    DENY_ALL = "deny_all"
    ALLOW_ALL = "allow_all"
    ALLOWLIST = "allowlist"


class NetworkPolicy(Strict):
    mode: NetworkMode = Field(default=NetworkMode.DENY_ALL, strict=False)
    allow_list: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, alias="allowList", max_length=256
    )

    @field_validator("allow_list")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        out = []
        for raw in values:
            value = raw.strip().lower().rstrip(".")
            if not _DOMAIN_RE.match(value):
                raise ValueError(f"allowList entries must be domain names, got {raw!r}")
            out.append(value)
        return out


class StoragePolicy(Strict):
    persistent: bool = True
    size_gb: int = Field(default=4, alias="sizeGb", ge=1, le=1024)


class RuntimePolicy(Strict):
    resource_limits: ResourceLimits = Field(default_factory=ResourceLimits, alias="resourceLimits")
    network_policy: NetworkPolicy = Field(default_factory=NetworkPolicy, alias="networkPolicy")
    storage_policy: StoragePolicy = Field(default_factory=StoragePolicy, alias="storagePolicy")
    max_concurrent_runs: int = Field(default=1, alias="maxConcurrentRuns", ge=1, le=64)


def default_harness_targets(model_configured: bool) -> list[HarnessTarget]:
    """A new agent runs ``native`` when it has a model to think with, else ``shell``."""
    shell = HarnessTarget(harnessName="shell", enabled=True, role=HarnessRole.DEFAULT)
    if not model_configured:
        return [shell]
    native = HarnessTarget(harnessName="native", enabled=True, role=HarnessRole.DEFAULT)
    return [native, shell.model_copy(update={"role": HarnessRole.AVAILABLE})]


EnvironmentStatus = Literal["pending", "provisioning", "ready", "failed", "deleting"]
