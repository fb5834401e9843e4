"""Asynchronous runs over HTTP: submit (202), poll, cancel, idempotency, events.

Against the session's ``runyard up``: the 202 answer's shape and polling to
the end; cancelling a queued run (it never starts: no ``startedAt`` and no
side effect in its home), a running one (it ends ``cancelled`` and its
process is gone) and an ended one (409 with ``data.status``); idempotent
submits, eight concurrent duplicates included; the event log as JSON pages
with ``since`` and as Server-Sent Events resumed with ``Last-Event-ID`` (no
gaps, no duplicates, ending at the terminal status); and the CLI commands.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from runyard.sdk.sse import parse_sse
from tests.acceptance.test_api_support import (
    RuntimeAgent,
    assert_envelope,
    poll,
    runtime_agent,
    send_json,
)
from tests.acceptance.test_cli import cli, failed, ok, ok_json
from tests.conftest import Server

TERMINAL = {"completed", "partial", "failed", "cancelled", "timed_out"}


@pytest.fixture
def rt(server: Server) -> Iterator[RuntimeAgent]:
    made = runtime_agent(server)
    with made.client:
        yield made


@pytest.fixture
def single(server: Server) -> Iterator[RuntimeAgent]:
    made = runtime_agent(server, runtimePolicy={"maxConcurrentRuns": 1})
    with made.client:
        yield made


def submit(rt: RuntimeAgent, key: str | None = None, **body: Any) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return rt.client.post(f"{rt.base}/runs", json=body, headers=headers)


def submitted(rt: RuntimeAgent, **body: Any) -> str:
    resp = submit(rt, **body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["runId"])


def finished(rt: RuntimeAgent, run_id: str) -> dict[str, Any]:
    return poll(lambda: rt.run(run_id), lambda r: r["status"] in TERMINAL, seconds=60)


def events(rt: RuntimeAgent, run_id: str, since: int | None = None) -> dict[str, Any]:
    params = {} if since is None else {"since": since}
    resp = rt.client.get(f"{rt.base}/runs/{run_id}/events", params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def sse(rt: RuntimeAgent, run_id: str, last: int | None = None) -> list[Any]:
    headers = {"Accept": "text/event-stream"}
    if last is not None:
        headers["Last-Event-ID"] = str(last)
    with rt.client.stream("GET", f"{rt.base}/runs/{run_id}/events", headers=headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        return list(parse_sse(resp.iter_lines()))


def no_process(marker: str) -> bool:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return marker not in ps.stdout


def test_submit_answers_202_and_the_run_completes(rt: RuntimeAgent) -> None:
    resp = submit(rt, input="echo async-hello", title="greeting")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert set(body) == {"runId", "status", "pollUrl"}
    assert body["status"] == "queued"
    assert body["pollUrl"] == f"/v1/agents/{rt.id}/runs/{body['runId']}"
    run = finished(rt, body["runId"])
    assert run["status"] == "completed" and run["output"] == "async-hello\n"
    assert run["title"] == "greeting" and run["source"] == "API"
    assert "echo async-hello" not in json.dumps(run)


def test_cancel_a_queued_run_it_never_starts(single: RuntimeAgent) -> None:
    marker = f"{uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    first = submitted(single, input=f"sleep {marker}")
    poll(lambda: single.run(first), lambda r: r["status"] == "running")
    second = submitted(single, input='touch "$HOME/second-ran"')
    resp = single.client.post(f"{single.base}/runs/{second}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"
    assert single.client.post(f"{single.base}/runs/{first}/cancel").status_code == 200
    assert finished(single, first)["status"] == "cancelled"
    run = single.run(second)
    assert run["status"] == "cancelled" and run["startedAt"] is None
    check = send_json(
        single.client,
        "POST",
        f"{single.base}/exec",
        {"input": 'test -e "$HOME/second-ran" && echo ran || echo never'},
    )
    assert check.json()["output"]["text"] == "never\n"


def test_cancel_a_running_run_kills_it(rt: RuntimeAgent) -> None:
    marker = f"{uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    run_id = submitted(rt, input=f"sleep {marker}")
    poll(lambda: rt.run(run_id), lambda r: r["status"] == "running")
    poll(lambda: no_process(marker), lambda gone: not gone)
    resp = rt.client.post(f"{rt.base}/runs/{run_id}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["cancelRequested"] is True
    run = finished(rt, run_id)
    assert run["status"] == "cancelled" and run["error"]["code"] == "cancelled"
    poll(lambda: no_process(marker), lambda gone: gone)
    kinds = [e["type"] for e in events(rt, run_id)["events"]]
    assert "cancel_requested" in kinds


def test_cancel_an_ended_run_is_409(rt: RuntimeAgent) -> None:
    run_id = submitted(rt, input="echo done")
    finished(rt, run_id)
    body = assert_envelope(rt.client.post(f"{rt.base}/runs/{run_id}/cancel"), 409, "CONFLICT")
    assert body["data"]["status"] == "completed"
    assert "already ended" in body["message"]
    missing = rt.client.post(f"{rt.base}/runs/run_nope/cancel")
    assert_envelope(missing, 404, "NOT_FOUND")


def test_idempotency_key_returns_the_same_run(rt: RuntimeAgent) -> None:
    key = uuid.uuid4().hex
    first = submit(rt, key, input="echo once")
    assert first.status_code == 202, first.text
    again = submit(rt, key, input="echo once")
    assert again.status_code == 200 and again.json()["runId"] == first.json()["runId"]
    other = submit(rt, key, input="echo different")
    assert_envelope(other, 409, "CONFLICT")
    bad = submit(rt, "bad key with spaces", input="echo x")
    assert_envelope(bad, 400, "BAD_REQUEST")


def test_concurrent_duplicate_submits_make_one_run(rt: RuntimeAgent) -> None:
    key = uuid.uuid4().hex
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: submit(rt, key, input="echo dup"), range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["runId"] for a in answers}) == 1
    runs = rt.client.get(f"{rt.base}/runs", params={"limit": 100}).json()["runs"]
    assert len([r for r in runs if r["id"] == answers[0].json()["runId"]]) == 1
    assert len(runs) == 1


def test_events_json_pages_with_since(rt: RuntimeAgent) -> None:
    run_id = submitted(rt, input="echo evented")
    finished(rt, run_id)
    whole = events(rt, run_id)
    seqs = [e["seq"] for e in whole["events"]]
    assert seqs == list(range(1, len(seqs) + 1)) and whole["nextSince"] == seqs[-1]
    assert [e["data"].get("status") for e in whole["events"] if e["type"] == "status"] == [
        "queued",
        "claimed",
        "running",
        "completed",
    ]
    assert {"text": "evented\n"} in [e["data"] for e in whole["events"]]
    assert "echo evented" not in json.dumps(whole)
    tail = events(rt, run_id, since=2)
    assert tail["events"] == whole["events"][2:]
    assert events(rt, run_id, since=seqs[-1]) == {"events": [], "nextSince": seqs[-1]}


def test_sse_streams_until_terminal_and_resumes(rt: RuntimeAgent) -> None:
    run_id = submitted(rt, input="sleep 0.3; echo streamed")
    live = sse(rt, run_id)
    ids = [int(m.id) for m in live]
    assert ids == list(range(1, len(ids) + 1))
    assert live[-1].event == "status"
    assert json.loads(live[-1].data)["data"]["status"] == "completed"
    resumed = sse(rt, run_id, last=2)
    assert [m.id for m in resumed] == [m.id for m in live[2:]]
    assert [m.data for m in resumed] == [m.data for m in live[2:]]


def test_cli_submit_watch_events_cancel(server: Server, rt: RuntimeAgent) -> None:
    run_id = ok(cli(server, "runs", "submit", rt.id, "echo from-cli", "--title", "t")).strip()
    assert run_id.startswith("run_")
    ok(cli(server, "runs", "watch", rt.id, run_id))
    doc = ok_json(cli(server, "runs", "events", rt.id, run_id, "--json"))
    assert doc["events"][-1]["data"]["status"] == "completed"
    assert "completed" in ok(cli(server, "runs", "events", rt.id, run_id))
    again = ok(cli(server, "runs", "submit", rt.id, "echo from-cli", "--idempotency-key", "cli-k1"))
    same = ok(cli(server, "runs", "submit", rt.id, "echo from-cli", "--idempotency-key", "cli-k1"))
    assert again == same
    assert "CONFLICT" in failed(cli(server, "runs", "cancel", rt.id, run_id))
    slow = ok(cli(server, "runs", "submit", rt.id, "sleep 30")).strip()
    poll(lambda: rt.run(slow), lambda r: r["status"] == "running")
    assert "cancellation requested" in ok(cli(server, "runs", "cancel", rt.id, slow))
    failed(cli(server, "runs", "watch", rt.id, slow))
    assert rt.run(slow)["status"] == "cancelled"
