"""Cron schedules of an agent: the entity, the wire bodies, and next-run times.

A schedule names a cron expression, an IANA timezone and a prompt; the worker's
scheduler (:mod:`runyard.worker.scheduler`) submits the prompt as a run
(``source = "SCHEDULED_AGENT"``) at each tick. Cron expressions have five
fields (minute hour day-of-month month day-of-week) or six, the sixth being
seconds (croniter's convention). Next-run times are computed in the
schedule's timezone, so ``0 9 * * *`` means 09:00 local time across DST
changes, and always strictly after a given instant: after downtime the next
run is the next tick after *now*, so missed ticks run once, not once each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import Field, field_validator

from runyard.domain.policies import Strict

SCHEDULED_SOURCE = "SCHEDULED_AGENT"
MAX_PER_AGENT = 100
MAX_PROMPT = 100_000


@dataclass(frozen=True)
class Schedule:
    id: str
    workspace_id: str
    agent_id: str
    name: str
    cron: str
    timezone: str
    prompt: str
    enabled: bool
    paused: bool
    created_at: int
    updated_at: int
    next_run_at: int | None = None
    harness: str | None = None
    timeout_seconds: int | None = None
    last_ran_at: int | None = None
    last_run_id: str | None = None
    last_spawn_error: str | None = None

    @property
    def active(self) -> bool:
        """Whether the schedule fires (enabled and not paused)."""
        return self.enabled and not self.paused


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name like 'Europe/Paris')"
        ) from exc


def next_run_after(cron: str, timezone: str, after_ms: int) -> int:
    """The first tick of ``cron`` in ``timezone`` strictly after ``after_ms`` (epoch ms)."""
    tz = zone(timezone)
    start = datetime.fromtimestamp(after_ms / 1000, tz=tz)
    try:
        nxt = croniter(cron, start).get_next(datetime)
    except CroniterError as exc:
        raise ValueError(f"cron {cron!r} never fires: {exc}") from exc
    result = int(nxt.timestamp() * 1000)
    # croniter drops sub-second precision; guarantee "strictly after".
    return result if result > after_ms else next_run_after(cron, timezone, after_ms + 1000)


def check_cron(value: str) -> str:
    value = " ".join(value.split())
    if len(value.split(" ")) not in (5, 6):
        raise ValueError(
            "cron must have 5 fields (minute hour day month weekday) or 6 (with seconds last)"
        )
    if not croniter.is_valid(value):
        raise ValueError(f"invalid cron expression {value!r}")
    next_run_after(value, "UTC", 0)  # rejects expressions that never fire (Feb 30)
    return value


def _timezone(value: str) -> str:
    zone(value)
    return value


def _name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("name must not be empty")
    return value


class ScheduleCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    cron: str = Field(min_length=1, max_length=200)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    enabled: bool = True
    harness: str | None = Field(default=None, min_length=1, max_length=64)
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds", ge=1)

    _n = field_validator("name")(_name)
    _c = field_validator("cron")(check_cron)
    _t = field_validator("timezone")(_timezone)


class SchedulePatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT)
    enabled: bool | None = None
    harness: str | None = Field(default=None, min_length=1, max_length=64)
    timeout_seconds: int | None = Field(default=None, alias="timeoutSeconds", ge=1)

    @field_validator("name")
    @classmethod
    def _n(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)

    @field_validator("cron")
    @classmethod
    def _c(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _t(cls, value: str | None) -> str | None:
        return None if value is None else _timezone(value)
