"""End to end: a new agent with a model runs the native agent with tools in its sandbox.

runyard's gateway forwards to a scripted fake provider on loopback (there is
no network here). Checked: the default harness of a model-configured agent,
multi-step tool use changing the agent's home, tool and token counts, the
provider key injected by the gateway and never visible inside the run, and a
disallowed model refused. Runs on the dev substrate and, as root, on bwrap.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server, start_up
from tests.fakes.upstream import FakeUpstream, reply, tool_call

KEY = "sk-provider-" + uuid.uuid4().hex


@pytest.fixture(params=["process", "bwrap"])
def runyard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "bwrap" and os.geteuid() != 0:
        pytest.skip("the bwrap leg needs root (cgroups, per-agent uids)")
    server = start_up(tmp_path / "data", {"RUNYARD_SANDBOX": request.param})
    server.substrate = request.param
    yield server
    server.stop()


def _usage(fake: FakeUpstream) -> None:
    fake.script_openai_chat(
        [
            tool_call("write_file", {"path": "notes.txt", "content": "alpha\n"}, input_tokens=30),
            tool_call("run_shell", {"command": "cat notes.txt; env"}, input_tokens=50),
            reply("The file says alpha.", input_tokens=70, output_tokens=12),
        ]
    )


def test_native_agent_thinks_with_tools(runyard: Server) -> None:
    with FakeUpstream(api_key=KEY) as fake, runyard.client() as c:
        _usage(fake)
        policy = {
            "provider": "openai-compatible",
            "model": "local-llm",
            "baseUrl": fake.openai_base_url,
        }
        made = c.post(
            "/v1/workspaces/default/agents", json={"name": "Thinker", "modelPolicy": policy}
        )
        assert made.status_code == 201, made.text
        agent: dict[str, Any] = made.json()["agent"]
        assert agent["harnessTargets"][0] == {
            "harnessName": "native",
            "enabled": True,
            "role": "default",
        }
        secret = c.put(
            "/v1/workspaces/default/secrets/llm-key",
            json={"projectionName": "OPENAI_API_KEY", "value": KEY, "agentIds": [agent["id"]]},
        )
        assert secret.status_code == 201, secret.text

        refused = c.post(
            f"/v1/agents/{agent['id']}/exec", json={"input": "hi", "model": "gpt-other"}
        )
        assert refused.status_code == 400

        done = c.post(f"/v1/agents/{agent['id']}/exec", json={"input": "What is in notes?"})
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["output"]["text"] == "The file says alpha."
        assert body["harness"] == "native" and body["sessionId"]
        run = c.get(f"/v1/agents/{agent['id']}/runs/{body['runId']}").json()["run"]
        canvas = c.get(f"/v1/agents/{agent['id']}/runs/{body['runId']}/canvas").json()
        again = c.post(
            f"/v1/agents/{agent['id']}/exec",
            json={"input": "cat notes.txt", "harness": "shell"},
        )
        assert again.json()["output"]["text"] == "alpha\n"
        if runyard.substrate == "bwrap":
            # Nothing the run can read holds the provider key: not its files, not its
            # env. (The script spells the key backwards, so it does not find itself.)
            backwards = KEY[::-1]
            hunt = c.post(
                f"/v1/agents/{agent['id']}/exec",
                json={
                    "input": f"k=$(echo '{backwards}' | rev);"
                    ' grep -rlF -- "$k" "$HOME" /run /tmp /etc 2>/dev/null;'
                    ' env | grep -cF -- "$k"; true',
                    "harness": "shell",
                },
            )
            assert hunt.status_code == 200, hunt.text
            assert hunt.json()["output"]["text"] == "0\n"

    assert run["toolUsage"] == {"source": "harness_result", "toolCallCount": 2}
    usage = run["tokenUsage"]
    assert usage["source"] == "provider_response"
    assert usage["inputTokens"] == 30 + 50 + 70
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    chats = fake.requests_for("chat_completions")
    assert len(chats) == 3
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in chats)
    assert all(r.model == "local-llm" for r in chats)
    # The run's own environment (env output fed back to the model) never held the key.
    tool_results = str(chats[2].body["messages"])
    assert "alpha" in tool_results and "RUNYARD_RUN_ID" in tool_results
    assert KEY not in tool_results
    assert KEY not in str(run)
    _check_canvas(canvas)


def _check_canvas(canvas: dict[str, Any]) -> None:
    """prompt → call → write_file → call → run_shell → call → output, from gateway and trace."""
    blocks = canvas["blocks"]
    assert [(b["type"], b["name"]) for b in blocks] == [
        ("input", "prompt"),
        ("model_call", "local-llm"),
        ("tool_call", "write_file"),
        ("model_call", "local-llm"),
        ("tool_call", "run_shell"),
        ("model_call", "local-llm"),
        ("output", "output"),
    ]
    for parent, child in itertools.pairwise(blocks):
        assert child["parents"] == [parent["id"]]
    assert [b["metadata"]["inputTokens"] for b in blocks if b["type"] == "model_call"] == [
        30,
        50,
        70,
    ]
    assert all(b["status"] == "completed" for b in blocks)
    assert "alpha" in blocks[4]["content"]  # the tool's output, as the trace kept it
    assert blocks[-1]["content"] == "The file says alpha."
    assert canvas["status"] == "completed"
    assert canvas["progress"]["tasksCompleted"] == canvas["progress"]["tasksTotal"] == 6
    assert KEY not in str(canvas)
