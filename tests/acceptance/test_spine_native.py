"""A Spine run on the ``native`` harness, thinking through the scripted fake provider.

runyard's model gateway forwards to :class:`~tests.fakes.upstream.FakeUpstream`
on loopback (no network). The agent reads the uploaded file from ``inputs/``
and writes ``outputs/summary.md`` with its tools. Checked on the Spine
surface: ``models_used`` and ``credits_consumed`` from the metered calls, the
model-call and tool-call blocks of the DAG and their nesting in the task
tree, the artifact, and that the harness saw the agent instructions first.
"""

from __future__ import annotations

import math
import uuid

from tests.acceptance.test_api_support import admin, bare_client, unique
from tests.acceptance.test_spine import data, poll_run, submit
from tests.conftest import Server
from tests.fakes.upstream import FakeUpstream, reply, tool_call

KEY = "sk-provider-" + uuid.uuid4().hex
NOTES = b"Q1 revenue grew 12%.\n"
SUMMARY = "# Summary\n\nRevenue grew 12% in Q1.\n"


def test_native_spine_run_records_models_and_steps(server: Server) -> None:
    slug = unique("spine-native")
    ws_key = admin(server, "create-workspace", slug)["workspaceKey"]
    with FakeUpstream(api_key=KEY) as fake, server.client(ws_key) as control:
        fake.script_openai_chat(
            [
                tool_call("read_file", {"path": "inputs/notes.txt"}, input_tokens=400),
                tool_call(
                    "write_file",
                    {"path": "outputs/summary.md", "content": SUMMARY},
                    input_tokens=500,
                ),
                reply("Summary written to outputs/summary.md.", input_tokens=600, output_tokens=40),
            ]
        )
        policy = {
            "provider": "openai-compatible",
            "model": "local-llm",
            "baseUrl": fake.openai_base_url,
        }
        made = control.post(
            f"/v1/workspaces/{slug}/agents",
            json={"name": "Default", "slug": "default", "modelPolicy": policy},
        )
        assert made.status_code == 201, made.text
        agent_id = made.json()["agent"]["id"]
        secret = control.put(
            f"/v1/workspaces/{slug}/secrets/llm-key",
            json={"projectionName": "OPENAI_API_KEY", "value": KEY, "agentIds": [agent_id]},
        )
        assert secret.status_code == 201, secret.text

        with bare_client(server, {"X-API-KEY": ws_key}) as spine:
            run_id = submit(
                spine,
                "Summarize the notes into outputs/summary.md.",
                files=[("files", ("notes.txt", NOTES, "text/plain"))],
                template="memo",
                agent_instructions="Be concise.",
            )
            run = poll_run(spine, run_id)
            assert run["status"] == "completed", run
            dag = data(spine.get(f"/v1/canvas/{run_id}/dag"))
            tasks = data(spine.get(f"/v1/canvas/{run_id}/tasks"))

        chats = fake.requests_for("chat_completions")
    assert len(chats) == 3
    first_user = str(chats[0].body["messages"])
    assert first_user.index("Be concise.") < first_user.index("Summarize the notes")
    assert "Q1 revenue grew 12%" in str(chats[1].body["messages"])  # read from inputs/

    assert run["result"]["final_output"] == "Summary written to outputs/summary.md."
    tokens = (400 + 9) + (500 + 9) + (600 + 40)
    assert run["metadata"] == {
        "template_used": "memo",
        "models_used": ["local-llm"],
        "credits_consumed": math.ceil(tokens / 1000),
    }
    [artifact] = run["result"]["artifacts"]
    assert artifact["name"] == "summary.md" and artifact["size_bytes"] == len(SUMMARY.encode())

    kinds = [(n["type"], n["name"]) for n in dag["nodes"]]
    assert kinds == [
        ("input", "prompt"),
        ("model_call", "local-llm"),
        ("tool_call", "read_file"),
        ("model_call", "local-llm"),
        ("tool_call", "write_file"),
        ("model_call", "local-llm"),
        ("output", "output"),
        ("artifact", "summary.md"),
    ]
    assert all(n["status"] == "completed" for n in dag["nodes"])
    assert "Q1 revenue grew 12%" in dag["nodes"][2]["content"]  # the tool's output
    ids = [n["id"] for n in dag["nodes"]]
    edges = {(e["source_id"], e["target_id"]) for e in dag["edges"]}
    assert {(ids[i], ids[i + 1]) for i in range(6)} <= edges
    assert (ids[5], ids[7]) in edges  # the artifact hangs off the last step

    models = [t for t in tasks["completed"] if t["task_type"] == "model-call-task"]
    assert [[c["name"] for c in m["children"]] for m in models] == [
        ["read_file"],
        ["write_file"],
        [],
    ]
    assert tasks["progress"]["tasks_completed"] == tasks["progress"]["tasks_total"] == 7
    assert KEY not in str(run) + str(dag) + str(tasks)
