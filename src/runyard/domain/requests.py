"""Validated request bodies shared by every surface that accepts them.

These are the client-writable shapes (camelCase on the wire, unknown fields
rejected). Services take them already validated; the routers only declare
them as bodies.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from runyard.domain.naming import is_slug, safe_relative_path, slugify
from runyard.domain.policies import (
    HarnessTarget,
    ModelPolicy,
    RuntimePolicy,
    Strict,
    check_harness_targets,
)

MAX_NAME = 200


def _slug_or_error(value: str | None) -> str | None:
    if value is not None and not is_slug(value):
        raise ValueError(
            "slug must be 1-63 lower-case letters, digits or '-', starting and ending"
            " with a letter or digit"
        )
    return value


def _name_or_error(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("name must not be empty")
    return value


def _derivable_slug(name: str | None, slug: str | None) -> None:
    if name is not None and slug is None and not slugify(name):
        raise ValueError(
            "cannot derive a slug from this name (it has no ASCII letters or digits);"
            " pass 'slug' as well"
        )


class AgentCreate(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    slug: str | None = None
    model_policy: ModelPolicy | None = Field(default=None, alias="modelPolicy")
    harness_targets: list[HarnessTarget] | None = Field(
        default=None, alias="harnessTargets", max_length=16
    )
    runtime_policy: RuntimePolicy | None = Field(default=None, alias="runtimePolicy")

    _name = field_validator("name")(_name_or_error)
    _slug = field_validator("slug")(_slug_or_error)

    @field_validator("harness_targets")
    @classmethod
    def _targets(cls, value: list[HarnessTarget] | None) -> list[HarnessTarget] | None:
        return None if value is None else check_harness_targets(value)

    @model_validator(mode="after")
    def _slug_known(self) -> AgentCreate:
        _derivable_slug(self.name, self.slug)
        return self


class AgentPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    slug: str | None = None
    model_policy: ModelPolicy | None = Field(default=None, alias="modelPolicy")
    runtime_policy: RuntimePolicy | None = Field(default=None, alias="runtimePolicy")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _name_or_error(value)

    _slug = field_validator("slug")(_slug_or_error)

    @model_validator(mode="after")
    def _not_empty(self) -> AgentPatch:
        if not self.model_fields_set:
            raise ValueError(
                "the patch changes nothing: give name, slug, modelPolicy or runtimePolicy"
            )
        for name in sorted(self.model_fields_set):
            if getattr(self, name) is None:
                alias = type(self).model_fields[name].alias or name
                raise ValueError(f"{alias} must not be null")
        _derivable_slug(self.name, self.slug)
        return self


class HarnessUpdate(Strict):
    harness_targets: list[HarnessTarget] = Field(alias="harnessTargets", max_length=16)

    @field_validator("harness_targets")
    @classmethod
    def _targets(cls, value: list[HarnessTarget]) -> list[HarnessTarget]:
        return check_harness_targets(value)


class AgentDelete(Strict):
    confirmation_slug: str = Field(alias="confirmationSlug", min_length=1, max_length=100)


class KeyCreate(Strict):
    name: str = Field(default="", max_length=MAX_NAME)


class ExecRequest(Strict):
    input: str = Field(min_length=1)
    harness: str | None = Field(default=None, min_length=1, max_length=64)
    session_id: str | None = Field(default=None, alias="sessionId", min_length=1, max_length=200)
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds", ge=1)
    workspace: str | None = None
    cwd: str | None = None
    # runyard extension: this run only uses another model the policy allows.
    model: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("workspace")
    @classmethod
    def _workspace(cls, value: str | None) -> str | None:
        return None if value is None else safe_relative_path(value, "workspace")

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None) -> str | None:
        return None if value is None else safe_relative_path(value, "cwd")

    @field_validator("input")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("input must not contain NUL characters")
        return value


class RunSubmit(ExecRequest):
    """An asynchronous submit: the ``/exec`` body plus an optional display title."""

    title: str | None = Field(default=None, min_length=1, max_length=200)


RESERVED_PROJECTIONS = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "LANG", "TERM", "PWD"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}
    | {"LD_PRELOAD", "LD_LIBRARY_PATH"}
)


class SecretPut(Strict):
    projection_name: str = Field(alias="projectionName", pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    value: str | None = Field(default=None, min_length=1, max_length=65_536)
    agent_ids: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, alias="agentIds", max_length=256
    )

    @field_validator("projection_name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_PROJECTIONS or value.startswith("RUNYARD_"):
            raise ValueError(f"projectionName {value!r} is reserved by runyard")
        return value

    @field_validator("value")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("value must not contain NUL characters")
        return value
