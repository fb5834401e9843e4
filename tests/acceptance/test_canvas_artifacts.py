"""A run's canvas and artifacts on the native surface, against ``runyard up``.

A shell run that writes under ``outputs/`` gets one artifact per new file
(symlinks and FIFOs are skipped), each downloadable through its signed link
without an API key, byte for byte; a tampered link is refused. Its canvas
holds prompt → output → artifacts with edges, full progress, and ``step`` /
``artifact`` events in the run's event log. The home persists, so a second
run only collects what it changed. A failing run's canvas is ``failed``.
Another workspace's key cannot read any of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_api_support import RuntimeAgent, bare_client, poll, runtime_agent
from tests.acceptance.test_cli import cli, ok, ok_json
from tests.conftest import Server

TERMINAL = {"completed", "partial", "failed", "cancelled", "timed_out"}

WRITE_OUTPUTS = """\
mkdir -p outputs/sub
printf 'quarterly report\\n' > outputs/Q1_Report.md
printf '{"rows": 3}' > outputs/sub/data.json
ln -sf /etc/passwd outputs/leak
mkfifo outputs/pipe
echo done
"""


@pytest.fixture
def rt(server: Server) -> Iterator[RuntimeAgent]:
    made = runtime_agent(server)
    with made.client:
        yield made


def run_to_end(rt: RuntimeAgent, script: str) -> dict[str, Any]:
    resp = rt.client.post(f"{rt.base}/runs", json={"input": script})
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["runId"]
    return poll(lambda: rt.run(run_id), lambda r: r["status"] in TERMINAL, seconds=60)


def get(rt: RuntimeAgent, run_id: str, what: str) -> dict[str, Any]:
    resp = rt.client.get(f"{rt.base}/runs/{run_id}/{what}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_outputs_become_downloadable_artifacts(server: Server, rt: RuntimeAgent) -> None:
    run = run_to_end(rt, WRITE_OUTPUTS)
    assert run["status"] == "completed", run
    arts = get(rt, run["id"], "artifacts")["artifacts"]
    assert sorted(a["name"] for a in arts) == ["Q1_Report.md", "sub/data.json"]
    report = next(a for a in arts if a["name"] == "Q1_Report.md")
    assert report["type"] == "md"
    assert report["sizeBytes"] == len(b"quarterly report\n")
    assert report["sha256"] == hashlib.sha256(b"quarterly report\n").hexdigest()
    with bare_client(server) as anonymous:
        got = anonymous.get(report["downloadUrl"])
        assert got.status_code == 200, got.text
        assert got.content == b"quarterly report\n"
        tampered = report["downloadUrl"].replace("signature=", "signature=0")
        refused = anonymous.get(tampered)
        assert refused.status_code == 403
        assert refused.json()["code"] == "FORBIDDEN"
        other = next(a for a in arts if a["name"] == "sub/data.json")
        forged = report["downloadUrl"].replace(report["id"], other["id"])
        assert anonymous.get(forged).status_code == 403


def test_canvas_is_a_dag_of_what_the_run_did(rt: RuntimeAgent) -> None:
    run = run_to_end(rt, WRITE_OUTPUTS)
    doc = get(rt, run["id"], "canvas")
    assert doc["canvasId"] == run["id"]
    assert doc["status"] == "completed"
    blocks = {b["id"]: b for b in doc["blocks"]}
    kinds = [b["type"] for b in doc["blocks"]]
    assert kinds == ["input", "output", "artifact", "artifact"]
    prompt, output = doc["blocks"][0], doc["blocks"][1]
    assert prompt["content"] is None  # the prompt is never stored in the canvas
    assert output["content"] == "done\n"
    assert output["status"] == "completed"
    edges = {(e["from"], e["to"]) for e in doc["edges"]}
    assert (prompt["id"], output["id"]) in edges
    for art in doc["blocks"][2:]:
        assert art["parents"] == [prompt["id"]]
        assert (prompt["id"], art["id"]) in edges
        assert art["sources"] == [f"outputs/{art['name']}"]
    assert set(blocks) == {b for e in edges for b in e} | {prompt["id"]}
    assert doc["progress"]["tasksCompleted"] == doc["progress"]["tasksTotal"] == 3
    assert doc["progress"]["elapsedMs"] >= 0
    arts = get(rt, run["id"], "artifacts")["artifacts"]
    assert {a["id"] for a in arts} == {b["id"] for b in doc["blocks"][2:]}
    events = get(rt, run["id"], "events")["events"]
    types = [e["type"] for e in events]
    assert types.count("artifact") == 2
    assert "step" not in types  # a shell run makes no model or tool calls
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses[-1] == "completed"
    assert types.index("artifact") < len(types) - 1  # recorded before the final status


def test_persistent_home_collects_only_what_a_run_changed(rt: RuntimeAgent) -> None:
    first = run_to_end(rt, "mkdir -p outputs; echo a > outputs/a.txt; echo b > outputs/b.txt")
    assert len(get(rt, first["id"], "artifacts")["artifacts"]) == 2
    same = run_to_end(rt, "ls outputs")
    assert same["status"] == "completed"
    assert get(rt, same["id"], "artifacts")["artifacts"] == []
    changed = run_to_end(rt, "echo changed > outputs/b.txt")
    arts = get(rt, changed["id"], "artifacts")["artifacts"]
    assert [a["name"] for a in arts] == ["b.txt"]
    assert arts[0]["sha256"] == hashlib.sha256(b"changed\n").hexdigest()


def test_failed_run_has_a_failed_canvas(rt: RuntimeAgent) -> None:
    run = run_to_end(rt, "echo partial work; exit 3")
    assert run["status"] == "failed"
    doc = get(rt, run["id"], "canvas")
    assert doc["status"] == "failed"
    assert doc["blocks"][-1]["type"] == "output"
    assert doc["blocks"][-1]["status"] == "failed"


def test_other_workspace_cannot_read_canvas_or_artifacts(server: Server, rt: RuntimeAgent) -> None:
    run = run_to_end(rt, "mkdir -p outputs; echo x > outputs/x.txt")
    other = runtime_agent(server)
    with other.client:
        for what in ("canvas", "artifacts"):
            resp = other.client.get(f"{rt.base}/runs/{run['id']}/{what}")
            assert resp.status_code == 404, resp.text
    with bare_client(server) as anonymous:
        resp = anonymous.get(f"{rt.base}/runs/{run['id']}/canvas")
        assert resp.status_code == 401


def test_download_link_needs_its_signature(server: Server, rt: RuntimeAgent) -> None:
    run = run_to_end(rt, "mkdir -p outputs; echo y > outputs/y.txt")
    art = get(rt, run["id"], "artifacts")["artifacts"][0]
    path = art["downloadUrl"].split("?")[0]
    with bare_client(server) as anonymous:
        missing = anonymous.get(path)
        assert missing.status_code == 400
        assert missing.json()["code"] == "BAD_REQUEST"
        expired = anonymous.get(path, params={"expires": "1", "signature": "0" * 64})
        assert expired.status_code == 403


def test_shell_output_streams_as_chunks_while_running(rt: RuntimeAgent) -> None:
    run = run_to_end(rt, "for i in 1 2 3; do echo line$i; sleep 0.4; done; printf tail")
    assert run["status"] == "completed"
    events = get(rt, run["id"], "events")["events"]
    chunks = [e for e in events if e["type"] == "output_chunk"]
    assert len(chunks) >= 2  # written while the run went on, not once at the end
    assert "".join(c["data"]["text"] for c in chunks) == "line1\nline2\nline3\ntail"
    kinds = [e["type"] for e in events]
    last_chunk = max(i for i, k in enumerate(kinds) if k == "output_chunk")
    assert last_chunk < kinds.index("output")  # every chunk before the final output


def test_cli_shows_canvas_and_downloads_artifacts(
    server: Server, rt: RuntimeAgent, tmp_path: Path
) -> None:
    run_id = ok(cli(server, "runs", "submit", rt.id, WRITE_OUTPUTS)).strip()
    watched = ok(cli(server, "runs", "watch", rt.id, run_id))
    assert "completed" in watched and "2 artifacts" in watched
    table = ok(cli(server, "runs", "canvas", rt.id, run_id))
    assert "completed" in table and "artifact" in table and "Q1_Report.md" in table
    doc = ok_json(cli(server, "runs", "canvas", rt.id, run_id, "--json"))
    assert doc["canvasId"] == run_id
    listed = ok(cli(server, "runs", "artifacts", rt.id, run_id, "--download", str(tmp_path)))
    assert "Q1_Report.md" in listed
    assert (tmp_path / "Q1_Report.md").read_bytes() == b"quarterly report\n"
    assert (tmp_path / "sub" / "data.json").read_bytes() == b'{"rows": 3}'
    assert "artifact" in ok(cli(server, "runs", "events", rt.id, run_id))
    assert rt.run(run_id)["source"] == "CLI"  # the CLI names itself as the run's source


def test_one_run_is_readable_on_every_surface_that_documents_it(
    server: Server, rt: RuntimeAgent
) -> None:
    """A run made through the native API: its canvas and artifacts on Spine, its
    state and session link on Warp, its event on URAgents."""
    run = run_to_end(rt, WRITE_OUTPUTS)
    with server.client() as ws:  # the workspace key
        spine = ws.get(f"/v1/run/{run['id']}").json()["data"]
        assert spine["status"] == "completed" and spine["canvas_id"] == run["id"]
        assert spine["result"]["final_output"] == "done\n"
        names = sorted(a["name"] for a in spine["result"]["artifacts"])
        assert names == ["Q1_Report.md", "sub/data.json"]
        dag = ws.get(f"/v1/canvas/{run['id']}/dag").json()["data"]
        assert [n["type"] for n in dag["nodes"]] == ["input", "output", "artifact", "artifact"]
        warp = ws.get(f"/agent/runs/{run['id']}").json()
        assert warp["state"] == "SUCCEEDED" and warp["prompt"] == WRITE_OUTPUTS
        assert ws.get(warp["session_link"]).json()["data"]["canvas_id"] == run["id"]
        events = ws.get(f"/v1/agents/{rt.id}/events").json()["data"]
        mine = [e for e in events if e["id"] == run["id"]]
        assert [e["status"] for e in mine] == ["COMPLETED"]
