"""Runtime configuration, built once in an entry point and passed down.

Settings come from explicit arguments first, then ``RUNYARD_*`` environment
variables, then defaults. There is no global settings object: ``up``,
``serve`` and ``worker`` each build one and hand it to what they start.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError

DEFAULT_PORT = 8750
DEFAULT_DATA_DIR = ".runyard"


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _env_flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the API, the worker and the store need to start."""

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    substrate: str = "bwrap"
    sandbox_cgroups: bool = True
    disk_quota: bool = True
    mount_root: Path = Path("/run/runyard")
    egress_allow_private: bool = False
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    worker_slots: int = 8
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    reaper_seconds: float = 5.0
    poll_seconds: float = 1.0
    default_timeout_seconds: int = 300
    max_timeout_seconds: int = 3600
    sync_wait_grace_seconds: float = 30.0
    admission_wait_seconds: float = 15.0
    secret_key: str | None = field(default=None, repr=False)
    max_input_bytes: int = 1_048_576
    max_output_bytes: int = 1_048_576
    webhook_allow_private: bool = False
    webhook_retry_base_seconds: float = 10.0
    webhook_max_attempts: int = 8
    webhook_timeout_seconds: float = 10.0
    max_upload_bytes: int = 32 * 1_048_576
    artifact_dir: Path | None = None
    artifact_max_files: int = 200
    artifact_max_bytes: int = 256 * 1_048_576
    artifact_link_seconds: int = 3600

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "runyard.db"

    @property
    def agents_dir(self) -> Path:
        return self.data_dir / "agents"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "scratch"

    @property
    def artifacts_dir(self) -> Path:
        """Where artifact contents live; API servers and workers must share it."""
        return self.artifact_dir if self.artifact_dir is not None else self.data_dir / "artifacts"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the non-None overrides applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> Settings:
        if self.artifact_link_seconds < 1 or self.artifact_max_files < 0:
            raise ConfigError("artifact link lifetime and file limit must be positive")
        if self.worker_slots < 1:
            raise ConfigError("worker slots must be at least 1")
        if self.webhook_max_attempts < 1:
            raise ConfigError("RUNYARD_WEBHOOK_MAX_ATTEMPTS must be at least 1")
        if self.webhook_retry_base_seconds <= 0 or self.webhook_timeout_seconds <= 0:
            raise ConfigError("webhook retry base and timeout must be positive")
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ConfigError("lease must be at least twice the heartbeat interval")
        if self.substrate not in ("process", "bwrap"):
            raise ConfigError(f"unknown sandbox substrate {self.substrate!r}")
        if self.database_url and not self.database_url.startswith(
            ("postgresql://", "postgres://", "sqlite:///")
        ):
            raise ConfigError("database URL must be postgresql://… or sqlite:///PATH")
        return self


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from ``env`` (default: the process environment) and overrides."""
    env = dict(os.environ if env is None else env)
    base = Settings(
        data_dir=Path(env.get("RUNYARD_DATA_DIR", DEFAULT_DATA_DIR)),
        database_url=env.get("RUNYARD_DATABASE_URL") or None,
        host=env.get("RUNYARD_HOST", "127.0.0.1"),
        port=_env_int(env, "RUNYARD_PORT", DEFAULT_PORT),
        substrate=env.get("RUNYARD_SANDBOX", "bwrap"),
        sandbox_cgroups=_env_flag(env, "RUNYARD_SANDBOX_CGROUPS", True),
        disk_quota=_env_flag(env, "RUNYARD_DISK_QUOTA", True),
        mount_root=Path(env.get("RUNYARD_MOUNT_ROOT", "/run/runyard")),
        egress_allow_private=_env_flag(env, "RUNYARD_EGRESS_ALLOW_PRIVATE", False),
        worker_slots=_env_int(env, "RUNYARD_WORKER_SLOTS", 8),
        lease_seconds=_env_float(env, "RUNYARD_LEASE_SECONDS", 30.0),
        heartbeat_seconds=_env_float(env, "RUNYARD_HEARTBEAT_SECONDS", 5.0),
        reaper_seconds=_env_float(env, "RUNYARD_REAPER_SECONDS", 5.0),
        poll_seconds=_env_float(env, "RUNYARD_POLL_SECONDS", 1.0),
        admission_wait_seconds=_env_float(env, "RUNYARD_ADMISSION_WAIT_SECONDS", 15.0),
        secret_key=env.get("RUNYARD_SECRET_KEY") or None,
        webhook_allow_private=_env_flag(env, "RUNYARD_WEBHOOK_ALLOW_PRIVATE", False),
        webhook_retry_base_seconds=_env_float(env, "RUNYARD_WEBHOOK_RETRY_BASE_SECONDS", 10.0),
        webhook_max_attempts=_env_int(env, "RUNYARD_WEBHOOK_MAX_ATTEMPTS", 8),
        webhook_timeout_seconds=_env_float(env, "RUNYARD_WEBHOOK_TIMEOUT_SECONDS", 10.0),
        artifact_dir=Path(env["RUNYARD_ARTIFACT_DIR"]) if env.get("RUNYARD_ARTIFACT_DIR") else None,
        max_upload_bytes=_env_int(env, "RUNYARD_MAX_UPLOAD_BYTES", 32 * 1_048_576),
        artifact_max_files=_env_int(env, "RUNYARD_ARTIFACT_MAX_FILES", 200),
        artifact_max_bytes=_env_int(env, "RUNYARD_ARTIFACT_MAX_BYTES", 256 * 1_048_576),
        artifact_link_seconds=_env_int(env, "RUNYARD_ARTIFACT_LINK_SECONDS", 3600),
    )
    if env.get("RUNYARD_WORKER_ID"):
        base = replace(base, worker_id=env["RUNYARD_WORKER_ID"])
    settings = base.with_overrides(**overrides)
    # Absolute, so paths handed to runs (scripts, homes) do not depend on a cwd.
    absolute = replace(settings, data_dir=settings.data_dir.absolute())
    if absolute.artifact_dir is not None:
        absolute = replace(absolute, artifact_dir=absolute.artifact_dir.absolute())
    return absolute.validate()
