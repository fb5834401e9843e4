"""Store contract: canvas blocks and artifacts, on SQLite and PostgreSQL.

A run's canvas is written by the worker in three places: its first blocks in
``start_run``'s transaction, live updates through ``record_blocks`` (fenced by
the lease token, like every worker write) and the final canvas plus the
artifacts in ``finish_run``'s transaction, with the terminal status. These
tests check that blocks are upserted by id (a rebuild updates rows in place),
that each block appends exactly one ``step`` event when it ends, that a stale
or foreign lease writes nothing, that the final canvas and artifacts are
written atomically with the status (and not at all when the status write
fails), that a new attempt starts a new canvas, and that reads are scoped by
workspace. Times are passed explicitly; nothing sleeps.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from runyard.domain.canvas import (
    Artifact,
    Block,
    Ending,
    block_id,
    build,
    model_steps,
    tool_steps,
)
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


def steps_of(store: Store, r: Run) -> list[dict[str, Any]]:
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
    """A claimed and started run (with its prompt block); returns it, its token, its start."""
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a, max_attempts=max_attempts)
    got, token = f.claim_one(store)
    assert got.id == r.id
    at = now_millis()
    assert store.start_run(r.id, token, at, "shell", None, blocks=build(r.id, at, []))
    return r, token, at


# ---- start_run ----------------------------------------------------------------------


def test_start_run_writes_its_blocks_and_step_events(store: Store) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a)
    _, token = f.claim_one(store)
    at = now_millis()
    # the prompt has ended; a model call already in flight has not
    blocks = build(r.id, at, model_steps([call(0, at + 1, None)]))
    assert store.start_run(r.id, token, at, "shell", None, blocks=blocks)
    assert store.list_blocks(ws.id, r.id) == blocks
    assert kinds(store, r) == ["status", "status", "status", "step"]
    assert steps_of(store, r) == [
        {
            "blockId": block_id(r.id, "prompt"),
            "type": "input",
            "name": "prompt",
            "status": "completed",
        }
    ]


def test_start_run_without_blocks_writes_none(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    _, token = f.claim_one(store)
    assert store.start_run(r.id, token, now_millis(), "shell", None)
    assert store.list_blocks(ws.id, r.id) == []
    assert "step" not in kinds(store, r)


def test_start_run_with_a_wrong_token_writes_no_blocks(store: Store) -> None:
    ws = f.workspace(store)
    r = f.run(store, f.agent(store, ws))
    f.claim_one(store)
    at = now_millis()
    assert not store.start_run(r.id, "not-the-token", at, "shell", None, blocks=build(r.id, at, []))
    assert store.list_blocks(ws.id, r.id) == []
    assert kinds(store, r) == ["status", "status"]


# ---- record_blocks ------------------------------------------------------------------


def test_record_blocks_upserts_in_place_with_one_step_event_per_ended_block(
    store: Store,
) -> None:
    r, token, at = started(store)
    running = build(r.id, at, model_steps([call(0, at + 1, None)]))
    assert store.record_blocks(r.id, token, running, at + 10)
    assert [b.status for b in store.list_blocks(r.workspace_id, r.id)] == ["completed", "running"]
    assert len(steps_of(store, r)) == 1  # the prompt's, from start_run; a running call has none

    done = build(r.id, at, model_steps([call(0, at + 1, at + 5)]))
    assert [b.id for b in done] == [b.id for b in running]
    assert store.record_blocks(r.id, token, done, at + 20)
    listed = store.list_blocks(r.workspace_id, r.id)
    assert listed == done  # same rows, updated in place
    assert listed[1].status == "completed" and listed[1].completed_at == at + 5
    model0 = {"blockId": block_id(r.id, "model:0"), "type": "model_call", "name": "gpt-test"}
    assert steps_of(store, r)[1:] == [{**model0, "status": "completed"}]

    # re-sending ended, unchanged blocks appends nothing
    before = events(store, r)
    assert store.record_blocks(r.id, token, done, at + 30)
    assert store.record_blocks(r.id, token, done[:1], at + 31)  # a subset deletes nothing
    assert events(store, r) == before
    assert store.list_blocks(r.workspace_id, r.id) == done


def test_record_blocks_adds_new_blocks_and_relinks_old_ones(store: Store) -> None:
    r, token, at = started(store)
    first = build(r.id, at, model_steps([call(0, at + 1, at + 2)]))
    assert store.record_blocks(r.id, token, first, at + 10)
    more = build(
        r.id,
        at,
        model_steps([call(0, at + 1, at + 2), call(1, at + 10, at + 20, status=500)])
        + tool_steps([{"name": "grep", "startedAt": at + 3, "completedAt": at + 4}]),
    )
    assert store.record_blocks(r.id, token, more, at + 30)
    listed = store.list_blocks(r.workspace_id, r.id)
    assert listed == more
    assert [b.type for b in listed] == ["input", "model_call", "tool_call", "model_call"]
    assert listed[3].parents == [listed[2].id] and listed[3].status == "failed"
    assert [d["status"] for d in steps_of(store, r)] == [
        "completed",  # prompt
        "completed",  # model:0
        "completed",  # tool:0
        "failed",  # model:1 (a failed block ends too)
    ]


def test_record_blocks_with_a_wrong_token_writes_nothing(store: Store) -> None:
    r, token, at = started(store)
    before_run, before_blocks, before_events = (
        f.current(store, r),
        store.list_blocks(r.workspace_id, r.id),
        events(store, r),
    )
    blocks = build(r.id, at, model_steps([call(0, at + 1, at + 2)]))
    assert not store.record_blocks(r.id, "wrong-token", blocks, at + 99)
    assert not store.record_blocks("run_missing", token, blocks, at + 99)
    assert store.list_blocks(r.workspace_id, r.id) == before_blocks
    assert events(store, r) == before_events
    assert f.current(store, r).updated_at == before_run.updated_at
    assert store.record_blocks(r.id, token, blocks, at + 100)  # the real lease still writes


def test_record_blocks_after_finish_returns_false(store: Store) -> None:
    r, token, at = started(store)
    assert store.finish_run(r.id, token, f.completed(), at + 50)
    final_blocks, final_events = store.list_blocks(r.workspace_id, r.id), events(store, r)
    late = build(r.id, at, model_steps([call(0, at + 1, at + 2)]))
    assert not store.record_blocks(r.id, token, late, at + 60)
    assert store.list_blocks(r.workspace_id, r.id) == final_blocks
    assert events(store, r) == final_events


def test_stale_lease_after_requeue_writes_nothing_and_a_new_attempt_starts_a_new_canvas(
    store: Store,
) -> None:
    ws = f.workspace(store)
    a = f.agent(store, ws)
    r = f.run(store, a, max_attempts=2)
    t0 = now_millis()
    _, old = f.claim_one(store, now=t0, lease_ms=1_000)
    assert store.start_run(r.id, old, t0, "shell", None, blocks=build(r.id, t0, []))
    first = build(r.id, t0, model_steps([call(0, t0 + 1, t0 + 2), call(1, t0 + 3, None)]))
    assert store.record_blocks(r.id, old, first, t0 + 10)
    assert len(store.list_blocks(ws.id, r.id)) == 3

    reaped = store.reap_expired(t0 + 60_000, max_claims=3)
    assert reaped.requeued == [r.id]
    assert not store.record_blocks(r.id, old, first, t0 + 60_001)  # lease gone: queued

    got, new = f.claim_one(store, now=t0 + 60_002)
    assert got.id == r.id and got.attempt == 2
    assert not store.record_blocks(r.id, old, first, t0 + 60_003)  # the old token is stale
    t1 = t0 + 60_010
    second = build(r.id, t1, [])
    assert store.start_run(r.id, new, t1, "shell", None, blocks=second)
    listed = store.list_blocks(ws.id, r.id)
    assert listed == second  # the first attempt's model calls are gone
    assert listed[0].started_at == t1
    assert not store.record_blocks(r.id, old, first, t1 + 1)
    assert store.list_blocks(ws.id, r.id) == second
    assert store.record_blocks(r.id, new, build(r.id, t1, model_steps([call(0, t1 + 1, None)])), t1)
    assert len(store.list_blocks(ws.id, r.id)) == 2


# ---- finish_run ---------------------------------------------------------------------


def test_finish_run_writes_blocks_and_artifacts_with_the_status(store: Store) -> None:
    r, token, at = started(store)
    calls = [call(0, at + 1, at + 2)]
    assert store.record_blocks(r.id, token, build(r.id, at, model_steps(calls)), at + 5)
    arts = [art(r, "report.txt", "abc"), art(r, "data.csv", "1,2")]
    final = build(
        r.id,
        at,
        model_steps(calls)
        + tool_steps([{"name": "write", "startedAt": at + 3, "completedAt": at + 4}]),
        ending=Ending(status="completed", output="the answer", completed_at=at + 100),
        artifacts=arts,
    )
    before = len(events(store, r))
    outcome = replace(f.completed("the answer"), blocks=final, artifacts=arts)
    assert store.finish_run(r.id, token, outcome, at + 100)

    assert f.current(store, r).status == "completed"
    assert store.list_blocks(r.workspace_id, r.id) == final
    assert store.list_artifacts(r.workspace_id, r.id) == sorted(arts, key=lambda x: x.name)
    new = events(store, r)[before:]
    assert [t for t, _ in new] == [
        "step",  # tool:0 (prompt and model:0 ended earlier: no new event)
        "step",  # output
        "step",  # report.txt artifact block
        "step",  # data.csv artifact block
        "artifact",
        "artifact",
        "output",
        "status",
    ]
    assert [d["blockId"] for t, d in new if t == "step"] == [
        block_id(r.id, "tool:0"),
        block_id(r.id, "output"),
        arts[0].id,
        arts[1].id,
    ]
    assert [d for t, d in new if t == "artifact"] == [
        {"artifactId": x.id, "name": x.name, "sizeBytes": x.size_bytes, "sha256": x.sha256}
        for x in arts
    ]
    assert new[-1][1]["status"] == "completed"


def test_failed_finish_writes_no_blocks_or_artifacts(store: Store) -> None:
    r, token, at = started(store)
    before_blocks, before_events = store.list_blocks(r.workspace_id, r.id), events(store, r)
    arts = [art(r, "a.txt")]
    final = build(r.id, at, [], ending=Ending("completed", "x", at + 9), artifacts=arts)
    outcome = replace(f.completed(), blocks=final, artifacts=arts)
    assert not store.finish_run(r.id, "wrong-token", outcome, at + 10)
    assert f.current(store, r).status == "running"
    assert store.list_blocks(r.workspace_id, r.id) == before_blocks
    assert store.list_artifacts(r.workspace_id, r.id) == []
    assert store.get_artifact(arts[0].id) is None
    assert events(store, r) == before_events
    assert store.finish_run(r.id, token, outcome, at + 11)  # the real lease still finishes
    assert store.list_artifacts(r.workspace_id, r.id) == arts


def test_finish_run_is_atomic_when_an_artifact_cannot_be_written(store: Store) -> None:
    r, token, at = started(store)
    before_blocks, before_events = store.list_blocks(r.workspace_id, r.id), events(store, r)
    good = art(r, "good.txt")
    broken = replace(art(r, "broken.txt"), name=None)  # violates NOT NULL: the insert fails
    final = build(r.id, at, [], ending=Ending("completed", "x", at + 9), artifacts=[good])
    outcome = replace(f.completed(), blocks=final, artifacts=[good, broken])
    with pytest.raises(Exception, match=r"(?i)null"):
        store.finish_run(r.id, token, outcome, at + 10)
    # nothing of the failed transaction is visible: not the status, blocks, artifacts, events
    assert f.current(store, r).status == "running"
    assert store.list_blocks(r.workspace_id, r.id) == before_blocks
    assert store.list_artifacts(r.workspace_id, r.id) == []
    assert store.get_artifact(good.id) is None
    assert events(store, r) == before_events
    # the lease is intact: the worker can still finish the run properly
    assert store.finish_run(r.id, token, replace(outcome, artifacts=[good]), at + 11)
    assert store.list_artifacts(r.workspace_id, r.id) == [good]


def test_finish_without_blocks_keeps_the_live_canvas(store: Store) -> None:
    r, token, at = started(store)
    live = build(r.id, at, model_steps([call(0, at + 1, at + 2)]))
    assert store.record_blocks(r.id, token, live, at + 5)
    assert store.finish_run(r.id, token, f.failed(), at + 10)
    assert store.list_blocks(r.workspace_id, r.id) == live
    assert store.list_artifacts(r.workspace_id, r.id) == []
    assert "artifact" not in kinds(store, r)


# ---- reads ----------------------------------------------------------------------------


def test_reads_are_scoped_by_workspace_and_get_artifact_finds_by_id(store: Store) -> None:
    r, token, at = started(store)
    arts = [art(r, "b.txt", "bb"), art(r, "a.txt", "a")]
    final = build(r.id, at, [], ending=Ending("completed", "ok", at + 5), artifacts=arts)
    outcome: RunOutcome = replace(f.completed(), blocks=final, artifacts=arts)
    assert store.finish_run(r.id, token, outcome, at + 5)

    assert len(store.list_blocks(r.workspace_id, r.id)) == 4
    assert [x.name for x in store.list_artifacts(r.workspace_id, r.id)] == ["a.txt", "b.txt"]
    other = f.workspace(store)
    assert store.list_blocks(other.id, r.id) == []
    assert store.list_artifacts(other.id, r.id) == []
    assert store.list_blocks(r.workspace_id, "run_missing") == []
    assert store.list_artifacts(r.workspace_id, "run_missing") == []

    for x in arts:
        assert store.get_artifact(x.id) == x
    assert store.get_artifact(block_id(r.id, "artifact:missing.txt")) is None


def test_blocks_round_trip_every_field(store: Store) -> None:
    r, token, at = started(store)
    block = Block(
        id=block_id(r.id, "tool:0"),
        run_id=r.id,
        position=1,
        name="fetch ünïcode",
        type="tool_call",
        status="failed",
        content="line 1\nline 2 \u2713",
        sources=["https://a.example/x?y=1", "outputs/z.txt"],
        parents=[block_id(r.id, "prompt")],
        metadata={"arguments": '{"q": 1}', "nested": {"n": [1, 2, None]}, "flag": True},
        started_at=at + 1,
        completed_at=None,
    )
    assert store.record_blocks(r.id, token, [block], at + 2)
    (got,) = [b for b in store.list_blocks(r.workspace_id, r.id) if b.id == block.id]
    assert got == block
