"""Next-run computation and schedule body validation (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from runyard.domain.schedules import ScheduleCreate, SchedulePatch, check_cron, next_run_after


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _at(ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=ZoneInfo(tz))


def test_next_run_is_in_the_schedules_timezone() -> None:
    start = _ms(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    nxt = _at(next_run_after("0 9 * * *", "Asia/Tokyo", start), "Asia/Tokyo")
    assert (nxt.day, nxt.hour, nxt.minute) == (16, 9, 0)
    nxt = _at(next_run_after("0 9 * * *", "America/New_York", start), "America/New_York")
    assert (nxt.day, nxt.hour) == (15, 9)  # 12:00 UTC is 07:00 in New York


def test_local_time_holds_across_dst_changes() -> None:
    tz = "Europe/Paris"
    # 09:00 Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    before = _ms(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))  # the day before the spring change
    first = next_run_after("0 9 * * *", tz, before)
    second = next_run_after("0 9 * * *", tz, first)
    assert datetime.fromtimestamp(first / 1000, UTC).hour == 7
    assert _at(second, tz).hour == 9
    assert second - first == 24 * 3600 * 1000  # a calendar day later, same local time


def test_a_time_skipped_by_dst_still_fires_that_day() -> None:
    tz = "America/New_York"  # 2026-03-08 02:00 → 03:00
    start = _ms(datetime(2026, 3, 8, 1, 0, tzinfo=ZoneInfo(tz)))
    nxt = _at(next_run_after("30 2 * * *", tz, start), tz)
    assert (nxt.month, nxt.day) == (3, 8)
    assert nxt.hour == 3


def test_missed_ticks_collapse_to_one_next_run_after_now() -> None:
    tick = _ms(datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    now = tick + 3 * 3600 * 1000 + 17_000  # three hours of ticks missed while down
    nxt = next_run_after("*/5 * * * *", "UTC", now)
    assert now < nxt <= now + 5 * 60 * 1000
    # and the tick after that is one period later, not a backlog
    assert next_run_after("*/5 * * * *", "UTC", nxt) == nxt + 5 * 60 * 1000


def test_strictly_after_even_on_a_tick_and_with_seconds() -> None:
    on_tick = _ms(datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    assert next_run_after("0 * * * *", "UTC", on_tick) == on_tick + 3600 * 1000
    assert next_run_after("* * * * * *", "UTC", on_tick) == on_tick + 1000
    assert next_run_after("* * * * * *", "UTC", on_tick + 500) == on_tick + 1000
    assert next_run_after("* * * * * */10", "UTC", on_tick + 1) == on_tick + 10_000


@pytest.mark.parametrize(
    "cron", ["", "* * * *", "* * * * * * *", "61 * * * *", "0 0 30 2 *", "bad cron x y z"]
)
def test_invalid_cron_is_rejected(cron: str) -> None:
    with pytest.raises(ValueError):
        check_cron(cron)


def test_bodies_validate_cron_timezone_and_unknown_fields() -> None:
    ok = ScheduleCreate.model_validate({"name": " n ", "cron": "0  9 * * *", "prompt": "p"})
    assert (ok.name, ok.cron, ok.timezone, ok.enabled) == ("n", "0 9 * * *", "UTC", True)
    for bad in (
        {"name": "n", "cron": "nope", "prompt": "p"},
        {"name": "n", "cron": "* * * * *", "prompt": "p", "timezone": "Mars/Olympus"},
        {"name": "n", "cron": "* * * * *", "prompt": "p", "timezone": "../../etc/passwd"},
        {"name": "n", "cron": "* * * * *", "prompt": "p", "color": "red"},
        {"name": "n", "cron": "* * * * *", "prompt": "p", "timeoutSeconds": 0},
        {"name": "   ", "cron": "* * * * *", "prompt": "p"},
    ):
        with pytest.raises(ValidationError):
            ScheduleCreate.model_validate(bad)
    patch = SchedulePatch.model_validate({"timezone": "Asia/Kolkata"})
    assert patch.model_fields_set == {"timezone"}
