"""Capabilities an agent declares: skills, CLIs, MCP servers and packages.

This module holds the client-writable shapes (one strict model per ``kind``,
chosen by the ``kind`` discriminator), the classification of skill sources,
and the stored :class:`Capability` entity. Clients write only the declared
fields and ``status`` (``declared`` or ``disabled``); the runtime statuses
(``materialized``, ``validated``, ``projected``, ``available``, ``failed``)
are evidence the worker records, never accepted from a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from runyard.domain.policies import Strict
from runyard.errors import BadRequest

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_EXECUTABLE_RE = re.compile(r"^(/[A-Za-z0-9._+/-]{1,255}|[A-Za-z0-9][A-Za-z0-9._+-]{0,127})$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PACKAGE_RE = re.compile(r"^[A-Za-z0-9@][A-Za-z0-9@/._~^<>=!,*+-]{0,213}$")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
MAX_PER_AGENT = 64

Arg = Annotated[str, Field(max_length=4096)]


class CapabilityStatus(StrEnum):
    DECLARED = "declared"
    DISABLED = "disabled"


EVIDENCE_STATUSES = ("materialized", "validated", "projected", "available", "failed")


class SourceKind(StrEnum):
    LOCAL = "local"
    GIT = "git"
    ARCHIVE = "archive"


def classify_source(source: str) -> SourceKind:
    """What a skill ``source`` names; ``ValueError`` with a client-readable reason otherwise.

    ``https://…`` is an archive when its path ends in ``.tar.gz``/``.tgz``/
    ``.zip``, else a git repository; ``http://…`` may only name an archive;
    ``file://…`` is a git repository on the worker host; anything else is a
    path relative to (or inside) the operator's skills root.
    """
    if "\x00" in source or not source.strip():
        raise ValueError("source must be a non-empty string without NUL characters")
    lowered = source.lower()
    if "://" in source:
        parts = urlsplit(source)
        scheme = parts.scheme.lower()
        archive = parts.path.lower().endswith(ARCHIVE_SUFFIXES)
        if scheme in ("http", "https") and not parts.hostname:
            raise ValueError("source URL needs a host")
        if scheme == "https":
            return SourceKind.ARCHIVE if archive else SourceKind.GIT
        if scheme == "http":
            if not archive:
                raise ValueError(
                    "http:// sources must name a .tar.gz/.tgz/.zip archive;"
                    " git repositories need https:// or file://"
                )
            return SourceKind.ARCHIVE
        if scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise ValueError("file:// sources must be absolute paths on the worker host")
            if ".." in parts.path.split("/"):
                raise ValueError("source must not contain '..'")
            return SourceKind.GIT
        raise ValueError(
            f"unsupported source scheme {scheme!r}: use a local path under the skills root,"
            " an https:// or file:// git repository, or an http(s) archive URL"
        )
    if lowered.startswith(("git@", "ssh:")):
        raise ValueError("ssh git sources are not supported; use https:// or file://")
    if ".." in source.split("/"):
        raise ValueError("source must not contain '..'")
    return SourceKind.LOCAL


class SkillInstallPlan(Strict):
    strategy: Literal["skill"] = "skill"
    manager: str | None = Field(default=None, max_length=64)
    skill_name: str | None = Field(default=None, alias="skillName", pattern=NAME_PATTERN)
    source: str | None = Field(default=None, max_length=2048)


class ValidationPlan(Strict):
    strategy: Literal["executable"]
    executable: str = Field(max_length=256)
    version_args: list[Arg] = Field(default_factory=list, alias="versionArgs", max_length=16)

    @field_validator("executable")
    @classmethod
    def _executable(cls, value: str) -> str:
        if not _EXECUTABLE_RE.fullmatch(value) or ".." in value.split("/"):
            raise ValueError(
                "executable must be a command name (e.g. 'ffmpeg') or an absolute path"
            )
        return value

    @field_validator("version_args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        if any("\x00" in a for a in value):
            raise ValueError("versionArgs must not contain NUL characters")
        return value


class SecretRef(Strict):
    secret: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class McpServer(Strict):
    """A stdio MCP server: the argv to start inside the sandbox and its environment.

    Environment values are literal strings or ``{"secret": "<secret name>"}``:
    a secret is referenced by its projection name (``${NAME}``) in the written
    config, so its value never lands in the agent's home.
    """

    command: list[Arg] = Field(min_length=1, max_length=64)
    env: dict[str, Annotated[str, Field(max_length=4096)] | SecretRef] = Field(
        default_factory=dict, max_length=64
    )

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if any("\x00" in a for a in value) or not value[0]:
            raise ValueError("command must be a non-empty argv without NUL characters")
        return value

    @field_validator("env")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _ENV_NAME_RE.fullmatch(name):
                raise ValueError(f"env name {name!r} is not a valid environment variable name")
        return value


class PackageInstallPlan(Strict):
    manager: Literal["pip", "npm"]
    packages: list[Annotated[str, Field(max_length=214)]] = Field(min_length=1, max_length=64)

    @field_validator("packages")
    @classmethod
    def _specs(cls, value: list[str]) -> list[str]:
        for spec in value:
            if not _PACKAGE_RE.fullmatch(spec):
                raise ValueError(f"package {spec!r} is not a plain package specifier")
        return value


class _Base(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    status: CapabilityStatus = Field(default=CapabilityStatus.DECLARED, strict=False)


class SkillDecl(_Base):
    kind: Literal["skill"]
    source: str = Field(max_length=2048)
    install_plan: SkillInstallPlan | None = Field(default=None, alias="installPlan")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        classify_source(value)
        return value


class CliDecl(_Base):
    kind: Literal["cli"]
    source: str = Field(default="system", max_length=2048)
    validation_plan: ValidationPlan = Field(alias="validationPlan")


class McpDecl(_Base):
    kind: Literal["mcp_server"]
    source: str = Field(default="stdio", max_length=2048)
    mcp_server: McpServer = Field(alias="mcpServer")


class PackageDecl(_Base):
    kind: Literal["package"]
    source: str = Field(default="registry", max_length=2048)
    install_plan: PackageInstallPlan = Field(alias="installPlan")


Declaration = Annotated[SkillDecl | CliDecl | McpDecl | PackageDecl, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[SkillDecl | CliDecl | McpDecl | PackageDecl] = TypeAdapter(Declaration)
KINDS = ("skill", "cli", "mcp_server", "package")


class CapabilityBody(Strict):
    """``{"capability": {...}}``: the request body of POST and PATCH."""

    capability: dict[str, Any]


def declare(fields: dict[str, Any]) -> SkillDecl | CliDecl | McpDecl | PackageDecl:
    """Validate a whole declaration (wire names); a clear 400 for anything wrong."""
    try:
        return _ADAPTER.validate_python(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ())]
        if loc and loc[0] in KINDS:
            loc = loc[1:]
        where = ".".join(["capability", *loc])
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            where, msg = "capability.kind", f"kind must be one of: {', '.join(KINDS)}"
        raise BadRequest(f"{where}: {msg}", {"field": where}) from exc


def spec_of(decl: SkillDecl | CliDecl | McpDecl | PackageDecl) -> dict[str, Any]:
    """The declared fields stored as the capability's spec (wire names)."""
    return decl.model_dump(
        by_alias=True, mode="json", exclude_none=True, exclude={"kind", "name", "status"}
    )


@dataclass(frozen=True)
class Capability:
    id: str
    workspace_id: str
    agent_id: str
    kind: str
    name: str
    status: str
    spec: dict[str, Any]
    created_at: int
    updated_at: int
    evidence_status: str | None = None
    evidence_error: str | None = None
    evidence_updated_at: int | None = None

    def wire(self) -> dict[str, Any]:
        """The declared document (wire names), as a client would write it."""
        return {"kind": self.kind, "name": self.name, "status": self.status, **self.spec}

    def required_secrets(self) -> list[str]:
        env = (self.spec.get("mcpServer") or {}).get("env") or {}
        return sorted({v["secret"] for v in env.values() if isinstance(v, dict)})
