"""Store contract: canvas steps and artifacts, on SQLite and PostgreSQL.

A canvas is drawn at read time from the run, its steps and its artifacts;
the store keeps the steps and the artifacts. The worker writes steps live
through ``record_steps`` (fenced by the lease token, like every worker
write) and the rest of them, with the artifacts, in ``finish_run``'s
transaction, with the terminal status. These tests check that steps are
upserted by key (updated in place), that each step appends exactly one
``step`` event when it ends, that a stale or foreign lease writes nothing,
that steps and artifacts are written atomically with the status (and not at
all when the status write fails), that a new attempt starts with no steps,
and that reads are scoped by workspace. Times are passed explicitly; nothing
sleeps.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from runyard.domain.canvas import Artifact, Step, block_id, model_steps, tool_steps
from runyard.domain.entities import Run, RunOutcome
from runyard.store.base import Store
from runyard.types import now_millis
from tests.integration import factories as f


def events(store: Store, r: Run) -> list[tuple[str, dict[str, Any]]]:
    found = store.list_events(r.workspace_id, r.id, 0, 1000)
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    return [(e.type, e.data) for e in found]


def kinds(store: Store, r: Run) -> list[str]:
    return [t for t, _ in events(store, r)]


def step_events(store: Store, r: Run) -> list[dict[str, Any]]:
    return [d for t, d in events(store, r) if t == "step"]


def call(index: int, start: int, end: int | None, status: int = 200) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "status": status,
        "startedAt": start,
        "completedAt": end,
        "index": index,
    }


def art(r: Run, name: str, data: str = "x", created_at: int = 5) -> Artifact:
    return Artifact(
        id=block_id(r.id, f"artifact:{name}"),
        run_id=r.id,
        workspace_id=r.workspace_id,
        name=name,
        type=name.rpartition(".")[2] or "file",
        media_type="text/plain",
        size_bytes=len(data),
        sha256=(data.encode().hex() * 64)[:64],
        created_at=created_at,
    )


def started(store: Store, *, max_attempts: int = 1) -> tuple[Run, str, int]:
    """A claimed and started run; returns it, its token, its start."""
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a, max_attempts=max_attempts)
    got, token = f.claim_one(store)
    assert got.id == r.id
    at = now_millis()
    assert store.start_run(r.id, token, at, "shell", None)
    return r, token, at


def test_a_run_starts_with_no_steps(store: Store) -> None:
    r, _, _ = started(store)
    assert store.list_steps(r.workspace_id, r.id) == []
    assert "step" not in kinds(store, r)


# ---- record_steps -------------------------------------------------------------------


def test_record_steps_upserts_in_place_with_one_step_event_per_ended_step(
    store: Store,
) -> None:
    r, token, at = started(store)
    running = model_steps([call(0, at + 1, None)])
    assert store.record_steps(r.id, token, running, at + 10)
    assert [s.status for s in store.list_steps(r.workspace_id, r.id)] == ["running"]
    assert step_events(store, r) == []  # a running call has not ended

    done = model_steps([call(0, at + 1, at + 5)])
    assert store.record_steps(r.id, token, done, at + 20)
    listed = store.list_steps(r.workspace_id, r.id)
    assert listed == done  # same row, updated in place
    assert listed[0].status == "completed" and listed[0].completed_at == at + 5
    model0 = {"blockId": block_id(r.id, "model:0"), "type": "model_call", "name": "gpt-test"}
    assert step_events(store, r) == [{**model0, "status": "completed"}]

    # re-sending ended, unchanged steps appends nothing; a subset deletes nothing
    before = events(store, r)
    assert store.record_steps(r.id, token, done, at + 30)
    assert store.record_steps(r.id, token, [], at + 31)
    assert events(store, r) == before
    assert store.list_steps(r.workspace_id, r.id) == done


def test_record_steps_adds_steps_and_a_failed_step_ends_too(store: Store) -> None:
    r, token, at = started(store)
    assert store.record_steps(r.id, token, model_steps([call(0, at + 1, at + 2)]), at + 10)
    more = model_steps(
        [call(0, at + 1, at + 2), call(1, at + 10, at + 20, status=500)]
    ) + tool_steps([{"name": "grep", "startedAt": at + 3, "completedAt": at + 4}])
    assert store.record_steps(r.id, token, more, at + 30)
    listed = store.list_steps(r.workspace_id, r.id)
    assert [s.key for s in listed] == ["model:0", "tool:0", "model:1"]  # by start time
    ended = {d["blockId"]: d["status"] for d in step_events(store, r)}
    assert ended == {
        block_id(r.id, "model:0"): "completed",
        block_id(r.id, "tool:0"): "completed",
        block_id(r.id, "model:1"): "failed",  # a failed step ends too
    }
    assert len(step_events(store, r)) == 3  # model:0 once, though it was sent twice


def test_record_steps_with_a_wrong_token_writes_nothing(store: Store) -> None:
    r, token, at = started(store)
    before_run, before_events = f.current(store, r), events(store, r)
    steps = model_steps([call(0, at + 1, at + 2)])
    assert not store.record_steps(r.id, "wrong-token", steps, at + 99)
    assert not store.record_steps("run_missing", token, steps, at + 99)
    assert store.list_steps(r.workspace_id, r.id) == []
    assert events(store, r) == before_events
    assert f.current(store, r).updated_at == before_run.updated_at
    assert store.record_steps(r.id, token, steps, at + 100)  # the real lease still writes


def test_record_steps_after_finish_returns_false(store: Store) -> None:
    r, token, at = started(store)
    assert store.finish_run(r.id, token, f.completed(), at + 50)
    final_events = events(store, r)
    late = model_steps([call(0, at + 1, at + 2)])
    assert not store.record_steps(r.id, token, late, at + 60)
    assert store.list_steps(r.workspace_id, r.id) == []
    assert events(store, r) == final_events


def test_stale_lease_after_requeue_writes_nothing_and_a_new_attempt_has_no_steps(
    store: Store,
) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a, max_attempts=2)
    t0 = now_millis()
    _, old = f.claim_one(store, now=t0, lease_ms=1_000)
    assert store.start_run(r.id, old, t0, "shell", None)
    first = model_steps([call(0, t0 + 1, t0 + 2), call(1, t0 + 3, None)])
    assert store.record_steps(r.id, old, first, t0 + 10)
    assert len(store.list_steps(ws.id, r.id)) == 2

    reaped = store.reap_expired(t0 + 60_000, max_claims=3)
    assert reaped.requeued == [r.id]
    assert not store.record_steps(r.id, old, first, t0 + 60_001)  # lease gone: queued

    got, new = f.claim_one(store, now=t0 + 60_002)
    assert got.id == r.id and got.attempt == 2
    assert not store.record_steps(r.id, old, first, t0 + 60_003)  # the old token is stale
    t1 = t0 + 60_010
    assert store.start_run(r.id, new, t1, "shell", None)
    assert store.list_steps(ws.id, r.id) == []  # the first attempt's model calls are gone
    assert not store.record_steps(r.id, old, first, t1 + 1)
    assert store.record_steps(r.id, new, model_steps([call(0, t1 + 1, None)]), t1)
    assert len(store.list_steps(ws.id, r.id)) == 1


# ---- finish_run ---------------------------------------------------------------------


def test_finish_run_writes_steps_and_artifacts_with_the_status(store: Store) -> None:
    r, token, at = started(store)
    calls = [call(0, at + 1, at + 2)]
    assert store.record_steps(r.id, token, model_steps(calls), at + 5)
    arts = [art(r, "report.txt", "abc"), art(r, "data.csv", "1,2")]
    tools = tool_steps([{"name": "write", "startedAt": at + 3, "completedAt": at + 4}])
    before = len(events(store, r))
    outcome = replace(f.completed("the answer"), steps=tools, artifacts=arts)
    assert store.finish_run(r.id, token, outcome, at + 100)

    assert f.current(store, r).status == "completed"
    assert store.list_steps(r.workspace_id, r.id) == model_steps(calls) + tools
    assert store.list_artifacts(r.workspace_id, r.id) == sorted(arts, key=lambda x: x.name)
    new = events(store, r)[before:]
    assert [t for t, _ in new] == ["step", "artifact", "artifact", "output", "status"]
    assert new[0][1]["blockId"] == block_id(r.id, "tool:0")
    assert [d for t, d in new if t == "artifact"] == [
        {"artifactId": x.id, "name": x.name, "sizeBytes": x.size_bytes, "sha256": x.sha256}
        for x in arts
    ]
    assert new[-1][1]["status"] == "completed"


def test_failed_finish_writes_no_steps_or_artifacts(store: Store) -> None:
    r, token, at = started(store)
    before_events = events(store, r)
    arts = [art(r, "a.txt")]
    steps = tool_steps([{"name": "t", "startedAt": at + 1, "completedAt": at + 2}])
    outcome = replace(f.completed(), steps=steps, artifacts=arts)
    assert not store.finish_run(r.id, "wrong-token", outcome, at + 10)
    assert f.current(store, r).status == "running"
    assert store.list_steps(r.workspace_id, r.id) == []
    assert store.list_artifacts(r.workspace_id, r.id) == []
    assert store.get_artifact(arts[0].id) is None
    assert events(store, r) == before_events
    assert store.finish_run(r.id, token, outcome, at + 11)  # the real lease still finishes
    assert store.list_artifacts(r.workspace_id, r.id) == arts
    assert store.list_steps(r.workspace_id, r.id) == steps


def test_finish_run_is_atomic_when_an_artifact_cannot_be_written(store: Store) -> None:
    r, token, at = started(store)
    before_events = events(store, r)
    good = art(r, "good.txt")
    broken = replace(art(r, "broken.txt"), name=None)  # violates NOT NULL: the insert fails
    steps = tool_steps([{"name": "t", "startedAt": at + 1, "completedAt": at + 2}])
    outcome = replace(f.completed(), steps=steps, artifacts=[good, broken])
    with pytest.raises(Exception, match=r"(?i)null"):
        store.finish_run(r.id, token, outcome, at + 10)
    # nothing of the failed transaction is visible: not the status, steps, artifacts, events
    assert f.current(store, r).status == "running"
    assert store.list_steps(r.workspace_id, r.id) == []
    assert store.list_artifacts(r.workspace_id, r.id) == []
    assert store.get_artifact(good.id) is None
    assert events(store, r) == before_events
    # the lease is intact: the worker can still finish the run properly
    assert store.finish_run(r.id, token, replace(outcome, artifacts=[good]), at + 11)
    assert store.list_artifacts(r.workspace_id, r.id) == [good]


def test_finish_without_steps_keeps_the_live_ones(store: Store) -> None:
    r, token, at = started(store)
    live = model_steps([call(0, at + 1, at + 2)])
    assert store.record_steps(r.id, token, live, at + 5)
    assert store.finish_run(r.id, token, f.failed(), at + 10)
    assert store.list_steps(r.workspace_id, r.id) == live
    assert store.list_artifacts(r.workspace_id, r.id) == []
    assert "artifact" not in kinds(store, r)


# ---- reads ----------------------------------------------------------------------------


def test_reads_are_scoped_by_workspace_and_get_artifact_finds_by_id(store: Store) -> None:
    r, token, at = started(store)
    arts = [art(r, "b.txt", "bb"), art(r, "a.txt", "a")]
    steps = tool_steps([{"name": "t", "startedAt": at + 1, "completedAt": at + 2}])
    outcome: RunOutcome = replace(f.completed(), steps=steps, artifacts=arts)
    assert store.finish_run(r.id, token, outcome, at + 5)

    assert len(store.list_steps(r.workspace_id, r.id)) == 1
    assert [x.name for x in store.list_artifacts(r.workspace_id, r.id)] == ["a.txt", "b.txt"]
    other = f.workspace(store)
    assert store.list_steps(other.id, r.id) == []
    assert store.list_artifacts(other.id, r.id) == []
    assert store.list_steps(r.workspace_id, "run_missing") == []
    assert store.list_artifacts(r.workspace_id, "run_missing") == []

    for x in arts:
        assert store.get_artifact(x.id) == x
    assert store.get_artifact(block_id(r.id, "artifact:missing.txt")) is None


def test_steps_round_trip_every_field(store: Store) -> None:
    r, token, at = started(store)
    step = Step(
        key="tool:0",
        type="tool_call",
        name="fetch ünïcode",
        status="failed",
        started_at=at + 1,
        completed_at=None,
        content="line 1\nline 2 \u2713",
        sources=["https://a.example/x?y=1", "outputs/z.txt"],
        metadata={"arguments": '{"q": 1}', "nested": {"n": [1, 2, None]}, "flag": True},
    )
    assert store.record_steps(r.id, token, [step], at + 2)
    assert store.list_steps(r.workspace_id, r.id) == [step]
