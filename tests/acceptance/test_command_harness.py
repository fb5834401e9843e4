"""Harness ``command``: a configured argv with the prompt on stdin."""

from __future__ import annotations

from typing import Any

from tests.conftest import Server


def _make(server: Server, name: str, targets: list[dict[str, Any]]) -> Any:
    with server.client() as c:
        return c.post(
            "/v1/workspaces/default/agents", json={"name": name, "harnessTargets": targets}
        )


def test_command_harness_runs_the_argv_with_the_prompt_on_stdin(server: Server) -> None:
    created = _make(
        server,
        "Upper Caser",
        [
            {"harnessName": "shell", "enabled": True, "role": "default"},
            {"harnessName": "command", "enabled": True, "command": ["tr", "a-z", "A-Z"]},
        ],
    )
    assert created.status_code == 201, created.text
    targets = created.json()["agent"]["harnessTargets"]
    assert targets[1] == {
        "harnessName": "command",
        "enabled": True,
        "role": "available",
        "command": ["tr", "a-z", "A-Z"],
    }
    assert "command" not in targets[0]
    agent_id = created.json()["agent"]["id"]
    with server.client() as c:
        done = c.post(
            f"/v1/agents/{agent_id}/exec", json={"input": "hello $HOME", "harness": "command"}
        )
        assert done.status_code == 200, done.text
        assert done.json()["output"]["text"] == "HELLO $HOME"
        assert done.json()["harness"] == "command"
        missing = c.patch(
            "/v1/workspaces/default/agents/upper-caser/harnesses",
            json={
                "harnessTargets": [
                    {"harnessName": "command", "role": "default", "command": ["no-such-tool-xyz"]}
                ]
            },
        )
        assert missing.status_code == 200, missing.text
        failed = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "x"})
        assert failed.status_code == 502
        assert "not found" in failed.json()["message"]


def test_command_argv_is_required_and_only_for_command(server: Server) -> None:
    no_argv = _make(server, "No Argv", [{"harnessName": "command", "role": "default"}])
    assert no_argv.status_code == 400
    assert 'needs "command"' in no_argv.json()["message"]
    misplaced = _make(
        server, "Misplaced", [{"harnessName": "shell", "role": "default", "command": ["ls"]}]
    )
    assert misplaced.status_code == 400
    nul = _make(
        server, "Nul Argv", [{"harnessName": "command", "role": "default", "command": ["a\u0000b"]}]
    )
    assert nul.status_code == 400


def test_tools_in_the_homes_local_bin_are_on_path(server: Server) -> None:
    made = _make(server, "Local Bin", [{"harnessName": "shell", "role": "default"}])
    agent_id = made.json()["agent"]["id"]
    script = (
        "mkdir -p ~/.local/bin && printf '#!/bin/sh\\necho mine\\n' > ~/.local/bin/mytool"
        " && chmod +x ~/.local/bin/mytool"
    )
    with server.client() as c:
        assert c.post(f"/v1/agents/{agent_id}/exec", json={"input": script}).status_code == 200
        done = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "mytool"})
        assert done.status_code == 200, done.text
        assert done.json()["output"]["text"] == "mine\n"
