"""Small shared pieces: ids, times, cursors, the error tree, settings, signals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runyard.errors import (
    BadRequest,
    ConfigError,
    NotFound,
    RemoteError,
    RunFailed,
    error_from_envelope,
)
from runyard.services.notify import RunSignals, wait_event
from runyard.services.runs import decode_cursor, encode_cursor
from runyard.settings import load_settings
from runyard.types import iso_millis, new_id, new_ulid, parse_iso


def test_ids_sort_by_time() -> None:
    earlier, later = new_ulid(1_000), new_ulid(2_000)
    assert len(earlier) == 26 and earlier < later
    assert new_id("agent").startswith("agent_")


def test_times_round_trip() -> None:
    assert iso_millis(1_776_420_000_123) == "2026-04-17T10:00:00.123Z"
    assert parse_iso("2026-04-17T10:00:00.123Z") == 1_776_420_000_123
    assert iso_millis(None) is None
    with pytest.raises(ValueError):
        parse_iso("2026-04-17T10:00:00")


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(42)) == 42
    for bad in ["", "zzz", "!!!", encode_cursor(1)[:-2] + "@@"]:
        with pytest.raises(BadRequest):
            decode_cursor(bad)


def test_error_tree_round_trips_through_envelopes() -> None:
    err = error_from_envelope("NOT_FOUND", 404, "nope", {"retryable": False})
    assert isinstance(err, NotFound) and err.message == "nope"
    assert isinstance(error_from_envelope("RUN_FAILED", 502, "x", {}), RunFailed)
    unknown = error_from_envelope("TEAPOT", 418, "short and stout")
    assert isinstance(unknown, RemoteError)
    assert (unknown.remote_code, unknown.remote_status) == ("TEAPOT", 418)
    assert BadRequest("x").data["retryable"] is False


def test_settings_validation() -> None:
    assert load_settings(env={}).port == 8750
    assert load_settings(env={"RUNYARD_PORT": "9000"}, port=9100).port == 9100
    with pytest.raises(ConfigError):
        load_settings(env={"RUNYARD_PORT": "many"})
    with pytest.raises(ConfigError):
        load_settings(env={"RUNYARD_SANDBOX": "chroot"})
    with pytest.raises(ConfigError):
        load_settings(env={"RUNYARD_LEASE_SECONDS": "1", "RUNYARD_HEARTBEAT_SECONDS": "1"})
    with pytest.raises(ConfigError):
        load_settings(env={"RUNYARD_DATABASE_URL": "mysql://x"})


def test_signals_wake_only_their_waiters() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        signals = RunSignals()
        with signals.watch_finish("run_a") as a, signals.watch_finish("run_b") as b:
            signals.publish("finished", "run_a")
            woke_a = await wait_event(a, 5)
            woke_b = await wait_event(b, 0.01)
        with signals.watch_queue() as queued:
            signals.publish("queued", "run_c")
            woke_q = await wait_event(queued, 5)
        return woke_a, woke_b, woke_q

    assert asyncio.run(scenario()) == (True, False, True)


def test_the_data_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(env={}).data_dir == tmp_path / ".runyard"
    assert load_settings(env={}, data_dir=Path("rel")).data_dir == tmp_path / "rel"
