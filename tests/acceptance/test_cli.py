"""The client commands of the ``runyard`` CLI, run as subprocesses against a real ``runyard up``.

Every command is exercised in its human (rich table) and ``--json`` modes;
credentials come from the data dir that ``runyard up`` wrote, as in the
README. Exit codes: 0 success, 1 API or connection error, 2 usage error.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Server, free_port, runyard_cmd

TIMEOUT = 120


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any RUNYARD_* connection settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    return {**env, **extra}


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*runyard_cmd(), *args],
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        cwd=cwd,
        env=env if env is not None else clean_env(),
        timeout=TIMEOUT,
        check=False,
    )


def cli(server: Server, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a client command with credentials discovered from the server's data dir."""
    return run_cli(*args, "--data-dir", str(server.data_dir), **kwargs)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def ok_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ok(result))
    return doc


def failed(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return result.stderr


def slug_of(agent: dict[str, Any]) -> str:
    slug: str = agent["agent"]["slug"]
    return slug


def id_of(agent: dict[str, Any]) -> str:
    agent_id: str = agent["agent"]["id"]
    return agent_id


# -- credentials and connection ------------------------------------------------


def test_readme_flow_exec_with_credentials_from_default_data_dir(
    server: Server, agent: dict[str, Any], tmp_path: Path
) -> None:
    # `runyard up` wrote ./.runyard/credentials.json; no key flags are needed from that dir.
    (tmp_path / ".runyard").symlink_to(server.data_dir)
    result = run_cli("exec", slug_of(agent), "echo hi", cwd=tmp_path)
    assert ok(result) == "hi\n"


def test_data_dir_from_environment(server: Server, agent: dict[str, Any], tmp_path: Path) -> None:
    env = clean_env(RUNYARD_DATA_DIR=str(server.data_dir))
    assert ok(run_cli("exec", slug_of(agent), "printf abc", cwd=tmp_path, env=env)) == "abc"


def test_flags_beat_environment(server: Server, agent: dict[str, Any], tmp_path: Path) -> None:
    env = clean_env(
        RUNYARD_BASE_URL=f"http://127.0.0.1:{free_port()}",
        RUNYARD_API_KEY="sk_workspace_bogus",
        RUNYARD_WORKSPACE="default",
    )
    # The environment alone points at nothing and carries a bad key ...
    assert "cannot reach runyard" in failed(run_cli("agents", "list", cwd=tmp_path, env=env))
    # ... explicit flags override each field.
    flags = ["--base-url", server.base_url, "--api-key", server.workspace_key]
    out = ok(run_cli("agents", "get", slug_of(agent), *flags, cwd=tmp_path, env=env))
    assert id_of(agent) in out
    env_only = clean_env(RUNYARD_BASE_URL=server.base_url, RUNYARD_API_KEY=server.workspace_key)
    assert ok_json(run_cli("agents", "get", id_of(agent), "--json", cwd=tmp_path, env=env_only))[
        "agent"
    ]["slug"] == slug_of(agent)


def test_missing_credentials_is_a_usage_error(tmp_path: Path) -> None:
    err = failed(run_cli("agents", "list", cwd=tmp_path), code=2)
    assert "no API key" in err
    assert str(tmp_path / ".runyard" / "credentials.json") in err or ".runyard" in err


def test_connection_refused_is_a_clear_message(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("exec", "some-agent", "echo hi", "--base-url", url, "--api-key", "sk_x")
    err = failed(result)
    assert f"cannot reach runyard at {url}; is `runyard up` running?" in err
    assert result.stdout == ""


def test_api_errors_exit_1_with_code_and_message(server: Server) -> None:
    err = failed(cli(server, "agents", "get", "no-such-agent"))
    assert "NOT_FOUND" in err and "no-such-agent" in err
    err = failed(cli(server, "agents", "list", "--api-key", "sk_workspace_wrong"))
    assert "UNAUTHORIZED" in err
    err = failed(cli(server, "agents", "list", "--workspace", "elsewhere"))
    assert "NOT_FOUND" in err and "elsewhere" in err


def test_usage_errors_exit_2(server: Server) -> None:
    failed(run_cli("exec"), code=2)
    failed(run_cli("agents", "list", "--limit", "0"), code=2)
    failed(run_cli("agents", "nonsense"), code=2)
    bare_group = run_cli("keys")
    failed(bare_group, code=2)
    assert "revoke" in bare_group.stdout + bare_group.stderr


# -- agents ----------------------------------------------------------------------


def test_agents_create_get_list_rename_delete(server: Server) -> None:
    human = ok(cli(server, "agents", "create", "Cli [Bracket] Agent"))
    assert "cli-bracket-agent" in human and "Cli [Bracket] Agent" in human
    created = ok_json(
        cli(server, "agents", "create", "Cli Json Agent", "--slug", "cli-json-x", "--json")
    )
    assert created["agent"]["slug"] == "cli-json-x" and created["agent"]["name"] == "Cli Json Agent"
    agent_id = created["agent"]["id"]

    by_slug = ok_json(cli(server, "agents", "get", "cli-json-x", "--json"))
    by_id = ok_json(cli(server, "agents", "get", agent_id, "--json"))
    assert by_slug["agent"] == by_id["agent"]
    assert set(by_slug) == {"agent", "environment"}
    human = ok(cli(server, "agents", "get", agent_id))
    assert "cli-json-x" in human and "shell (default)" in human

    listed = ok_json(cli(server, "agents", "list", "--json", "--limit", "100"))
    assert agent_id in [a["agent"]["id"] for a in listed["agents"]]
    assert {"agents", "hasMore", "nextCursor"} <= set(listed)
    table = ok(cli(server, "agents", "list", "--limit", "100"))
    assert "SLUG" in table and "cli-json-x" in table and agent_id in table

    renamed = ok_json(cli(server, "agents", "rename", agent_id, "Renamed Cli Agent", "--json"))
    assert renamed["agent"]["slug"] == "renamed-cli-agent"
    assert renamed["agent"]["id"] == agent_id
    human = ok(cli(server, "agents", "rename", "renamed-cli-agent", "Renamed Again"))
    assert "renamed-again" in human
    failed(cli(server, "agents", "get", "cli-json-x"))

    deleted = ok_json(cli(server, "agents", "delete", "renamed-again", "--yes", "--json"))
    assert deleted == {"deleted": True, "agent": {"id": agent_id, "slug": "renamed-again"}}
    assert "NOT_FOUND" in failed(cli(server, "agents", "get", agent_id))
    out = ok(cli(server, "agents", "delete", "cli-bracket-agent", "-y"))
    assert "deleted agent cli-bracket-agent" in out


def test_agents_list_pages_with_cursor(server: Server, agent: dict[str, Any]) -> None:
    ok(cli(server, "agents", "create", "Paging Helper"))
    first = ok_json(cli(server, "agents", "list", "--limit", "1", "--json"))
    assert len(first["agents"]) == 1 and first["hasMore"] is True
    second = ok_json(
        cli(server, "agents", "list", "--limit", "1", "--cursor", first["nextCursor"], "--json")
    )
    assert second["agents"][0]["agent"]["id"] != first["agents"][0]["agent"]["id"]
    human = cli(server, "agents", "list", "--limit", "1")
    assert f"--cursor {first['nextCursor']}" in human.stderr


def test_delete_without_yes_and_without_a_terminal_refuses(
    server: Server, agent: dict[str, Any]
) -> None:
    err = failed(cli(server, "agents", "delete", slug_of(agent)), code=2)
    assert "--yes" in err and "not a terminal" in err
    assert ok_json(cli(server, "agents", "get", slug_of(agent), "--json"))["agent"]["id"] == id_of(
        agent
    )


def _delete_on_a_terminal(server: Server, agent_ref: str, typed: str) -> tuple[int, str, str]:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [*runyard_cmd(), "agents", "delete", agent_ref, "--data-dir", str(server.data_dir)],
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        text=True,
    )
    os.close(child)
    try:
        os.write(main, f"{typed}\n".encode())
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(main)
    return proc.returncode, out, err


def test_delete_asks_to_type_the_slug_on_a_terminal(server: Server, agent: dict[str, Any]) -> None:
    rc, out, err = _delete_on_a_terminal(server, id_of(agent), "not-the-slug")
    assert rc == 1 and "does not match" in err, (out, err)
    assert f"({slug_of(agent)})" in out  # the prompt names the slug to type
    ok(cli(server, "agents", "get", slug_of(agent)))

    rc, out, err = _delete_on_a_terminal(server, id_of(agent), slug_of(agent))
    assert rc == 0, (out, err)
    assert f"deleted agent {slug_of(agent)}" in out
    failed(cli(server, "agents", "get", slug_of(agent)))


def test_harnesses_set(server: Server, agent: dict[str, Any]) -> None:
    doc = ok_json(
        cli(
            server,
            "agents",
            "harnesses",
            "set",
            slug_of(agent),
            "--default",
            "shell",
            "--available",
            "command",
            "--command",
            "tr 'a-z' A-Z",
            "--disabled",
            "codex",
            "--json",
        )
    )
    assert doc["agent"]["harnessTargets"] == [
        {"harnessName": "shell", "enabled": True, "role": "default"},
        {
            "harnessName": "command",
            "enabled": True,
            "role": "available",
            "command": ["tr", "a-z", "A-Z"],
        },
        {"harnessName": "codex", "enabled": False, "role": "available"},
    ]
    human = ok(cli(server, "agents", "harnesses", "set", id_of(agent), "--default", "shell"))
    assert "shell (default)" in human and "command" not in human
    got = ok_json(cli(server, "agents", "get", slug_of(agent), "--json"))
    assert got["agent"]["harnessTargets"] == [
        {"harnessName": "shell", "enabled": True, "role": "default"}
    ]
    args = ["agents", "harnesses", "set", slug_of(agent), "--default", "shell"]
    assert "more than once" in failed(cli(server, *args, "--available", "shell"), code=2)
    assert "BAD_REQUEST" in failed(cli(server, *args, "--available", "no-such-harness"))
    failed(cli(server, "agents", "harnesses", "set", slug_of(agent)), code=2)


# -- keys --------------------------------------------------------------------------


def test_keys_create_list_revoke(server: Server, agent: dict[str, Any]) -> None:
    created = cli(server, "keys", "create", slug_of(agent), "--name", "ci")
    secret = ok(created).strip()
    assert secret.startswith("sk_agent_") and "\n" not in secret  # stdout is only the secret
    assert "shown only now" in created.stderr
    # The runtime key works on the runtime API, by agent id, with no data dir.
    flags = ["--base-url", server.base_url, "--api-key", secret]
    assert ok(run_cli("exec", id_of(agent), "echo keyed", *flags)) == "keyed\n"
    err = failed(run_cli("exec", slug_of(agent), "echo keyed", *flags))
    assert "FORBIDDEN" in err and "agent_" in err

    as_json = ok_json(cli(server, "keys", "create", id_of(agent), "--json"))
    assert as_json["secret"].startswith("sk_agent_")
    assert as_json["key"]["agentId"] == id_of(agent) and as_json["key"]["kind"] == "agent"

    listed = ok_json(cli(server, "keys", "list", slug_of(agent), "--json"))
    ids = {k["id"] for k in listed["keys"]}
    assert as_json["key"]["id"] in ids and len(ids) == 2
    assert all("secret" not in k for k in listed["keys"])
    table = ok(cli(server, "keys", "list", id_of(agent)))
    assert "PREFIX" in table and "ci" in table and secret not in table

    key_id = next(k["id"] for k in listed["keys"] if k["name"] == "ci")
    revoked = ok_json(cli(server, "keys", "revoke", slug_of(agent), key_id, "--json"))
    assert revoked["key"]["id"] == key_id and revoked["key"]["revokedAt"] is not None
    assert "UNAUTHORIZED" in failed(run_cli("exec", id_of(agent), "echo no", *flags))
    human = ok(cli(server, "keys", "revoke", slug_of(agent), as_json["key"]["id"]))
    assert as_json["key"]["id"] in human
    assert "NOT_FOUND" in failed(cli(server, "keys", "revoke", slug_of(agent), "key_nope"))


# -- exec and runs -------------------------------------------------------------------


def test_exec_prints_raw_output_and_json(server: Server, agent: dict[str, Any]) -> None:
    assert ok(cli(server, "exec", slug_of(agent), "printf 'a\\nb'")) == "a\nb"
    doc = ok_json(cli(server, "exec", id_of(agent), "echo json", "--json"))
    assert doc["output"] == {"text": "json\n"}
    assert doc["runId"].startswith("run_") and doc["harness"] == "shell"
    script = "echo from-stdin\n"
    assert ok(cli(server, "exec", slug_of(agent), "-", stdin=script)) == "from-stdin\n"


def test_exec_options_reach_the_run(server: Server, agent: dict[str, Any]) -> None:
    result = cli(
        server,
        "exec",
        slug_of(agent),
        "pwd",
        "--workspace-path",
        "proj",
        "--cwd",
        "sub/dir",
        "--session-id",
        "sess-1",
        "--timeout-seconds",
        "30",
        "--harness",
        "shell",
    )
    assert ok(result).strip().endswith("/proj/sub/dir")
    assert "warning: sessionId is ignored" in result.stderr
    runs = ok_json(cli(server, "runs", "list", slug_of(agent), "--json"))
    assert runs["runs"][0]["request"] == {"harness": "shell", "timeoutSeconds": 30}
    err = failed(cli(server, "exec", slug_of(agent), "pwd", "--cwd", "../escape"))
    assert "BAD_REQUEST" in err and "cwd" in err


def test_exec_failure_exits_1_with_run_id(server: Server, agent: dict[str, Any]) -> None:
    result = cli(server, "exec", slug_of(agent), "echo partial; exit 3")
    err = failed(result)
    assert result.stdout == ""
    assert "RUN_FAILED" in err and "status 3" in err
    run_id = err.split("runId: ", 1)[1].split(")", 1)[0]
    run = ok_json(cli(server, "runs", "get", slug_of(agent), run_id, "--json"))["run"]
    assert run["status"] == "failed" and run["error"]["code"] == "harness_failed"

    err = failed(cli(server, "exec", slug_of(agent), "sleep 30", "--timeout-seconds", "1"))
    assert "RUN_TIMED_OUT" in err and "runId: run_" in err


def test_runs_list_and_get(server: Server, agent: dict[str, Any]) -> None:
    first = ok_json(cli(server, "exec", slug_of(agent), "echo one", "--json"))["runId"]
    second = ok_json(cli(server, "exec", slug_of(agent), "echo two", "--json"))["runId"]

    page = ok_json(cli(server, "runs", "list", slug_of(agent), "--limit", "1", "--json"))
    assert [r["id"] for r in page["runs"]] == [second] and page["hasMore"] is True
    rest = ok_json(
        cli(
            server,
            "runs",
            "list",
            id_of(agent),
            "--limit",
            "5",
            "--cursor",
            page["nextCursor"],
            "--json",
        )
    )
    assert [r["id"] for r in rest["runs"]] == [first] and rest["hasMore"] is False
    table = cli(server, "runs", "list", slug_of(agent), "--limit", "1")
    assert second in ok(table) and "completed" in table.stdout and "RUN ID" in table.stdout
    assert f"--cursor {page['nextCursor']}" in table.stderr

    run = ok_json(cli(server, "runs", "get", id_of(agent), first, "--json"))["run"]
    assert run["id"] == first and run["status"] == "completed" and run["output"] == "one\n"
    assert "input" not in run
    human = ok(cli(server, "runs", "get", slug_of(agent), second))
    assert second in human and "completed" in human and "two" in human
    assert "NOT_FOUND" in failed(cli(server, "runs", "get", slug_of(agent), "run_missing"))
