"""Capabilities applied by the worker: skills from a local dir, a git repo and an
archive end ``projected`` and are readable by runs; a source without
``SKILL.md``, a missing CLI and a package on a ``deny_all`` agent end
``failed`` with clear errors; ``bash --version`` is ``validated``; disabling a
skill removes it. Runs on the process substrate and, as root, on bwrap.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.test_api_support import poll, send_json, unique
from tests.conftest import Server, start_up

SKILL_MD = "---\nname: {name}\ndescription: test skill {name}\n---\nUse {name} wisely.\n"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request log on the test's stderr."""


def _skill(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "SKILL.md").write_text(SKILL_MD.format(name=name))
    (directory / "notes.txt").write_text("extra file\n")
    return directory


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A skills root (a local skill, a git repo, a broken skill) and an http server
    on 127.0.0.1 serving a .tar.gz of another skill."""
    root = tmp_path_factory.mktemp("skills-root")
    _skill(root / "local-one", "local-one")
    repo = _skill(root / "repos" / "git-one", "git-one")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "skill"], check=True)
    (root / "broken").mkdir()
    (root / "broken" / "README.md").write_text("no skill here\n")
    served = tmp_path_factory.mktemp("served")
    packed = _skill(served / "src" / "tar-one", "tar-one")
    with tarfile.open(served / "tar-one.tar.gz", "w:gz") as tf:
        tf.add(packed, arcname="tar-one")
    handler = functools.partial(_Quiet, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"root": root, "repo": repo, "url": f"http://127.0.0.1:{httpd.server_port}"}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module", params=["process", "bwrap"])
def runyard(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sources: dict[str, Any],
) -> Iterator[Server]:
    if request.param == "bwrap" and os.geteuid() != 0:
        pytest.skip("the bwrap leg needs root (cgroups, per-agent uids)")
    data = tmp_path_factory.mktemp(f"caps-{request.param}") / "data"
    env = {"RUNYARD_SANDBOX": request.param, "RUNYARD_SKILLS_DIR": str(sources["root"])}
    server = start_up(data, env)
    yield server
    server.stop()


def _caps(c: httpx.Client, slug: str) -> dict[str, Any]:
    resp = c.get(f"/v1/workspaces/default/agents/{slug}/capabilities")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _settled(c: httpx.Client, slug: str) -> dict[str, Any]:
    """Wait until the environment applied the latest capability set; its capabilities."""

    def read() -> tuple[dict[str, Any], dict[str, Any]]:
        agent = c.get(f"/v1/workspaces/default/agents/{slug}").json()
        return agent, _caps(c, slug)

    def done(pair: tuple[dict[str, Any], dict[str, Any]]) -> bool:
        env = pair[0]["environment"]
        caps = pair[1]["capabilities"]
        return (
            env["status"] == "ready"
            and env["runtimeReconciliation"]["status"] == "applied"
            and all(
                cap["evidence"]["updatedAt"] is not None
                for cap in caps
                if cap["status"] == "declared"
            )
        )

    agent, caps = poll(read, done, seconds=45)
    return {"agent": agent, **caps}


def _add(c: httpx.Client, slug: str, capability: dict[str, Any]) -> dict[str, Any]:
    resp = send_json(
        c, "POST", f"/v1/workspaces/default/agents/{slug}/capabilities", {"capability": capability}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _by_name(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cap["name"]: cap for cap in state["capabilities"]}


def test_capabilities_are_materialized_validated_and_removed(
    runyard: Server, sources: dict[str, Any]
) -> None:
    with runyard.client() as c:
        made = c.post(
            "/v1/workspaces/default/agents",
            json={
                "name": unique("Skilled"),
                "harnessTargets": [
                    {"harnessName": "shell", "enabled": True, "role": "default"},
                    {"harnessName": "claude-code", "enabled": True, "role": "available"},
                ],
            },
        )
        assert made.status_code == 201, made.text
        slug, agent_id = made.json()["agent"]["slug"], made.json()["agent"]["id"]
        for cap in (
            {"kind": "skill", "name": "local-one", "source": "local-one"},
            {"kind": "skill", "name": "git-one", "source": f"file://{sources['repo']}"},
            {"kind": "skill", "name": "tar-one", "source": f"{sources['url']}/tar-one.tar.gz"},
            {"kind": "skill", "name": "broken", "source": "broken"},
            {
                "kind": "cli",
                "name": "ffmpeg",
                "source": "system",
                "status": "declared",
                "validationPlan": {
                    "strategy": "executable",
                    "executable": "ffmpeg",
                    "versionArgs": ["-version"],
                },
            },
            {
                "kind": "cli",
                "name": "bash",
                "validationPlan": {
                    "strategy": "executable",
                    "executable": "bash",
                    "versionArgs": ["--version"],
                },
            },
            {
                "kind": "mcp_server",
                "name": "github",
                "mcpServer": {"command": ["gh-mcp", "--stdio"], "env": {"T": {"secret": "gh"}}},
            },
            {
                "kind": "package",
                "name": "requests",
                "installPlan": {"manager": "pip", "packages": ["requests"]},
            },
        ):
            _add(c, slug, cap)
        state = _settled(c, slug)
        caps = _by_name(state)
        for name in ("local-one", "git-one", "tar-one"):
            assert caps[name]["evidence"]["status"] == "projected", caps[name]
            assert caps[name]["evidence"]["error"] is None
        assert caps["broken"]["evidence"]["status"] == "failed"
        assert "SKILL.md" in caps["broken"]["evidence"]["error"]
        assert caps["ffmpeg"]["evidence"] == {
            "status": "failed",
            "error": "executable 'ffmpeg' not found in the agent's environment",
            "updatedAt": caps["ffmpeg"]["evidence"]["updatedAt"],
        }
        assert caps["bash"]["evidence"]["status"] == "validated"
        assert caps["github"]["evidence"]["status"] == "projected"
        assert state["missingSecrets"] == ["gh"]
        assert caps["requests"]["evidence"]["status"] == "failed"
        assert "deny_all" in caps["requests"]["evidence"]["error"]
        recon = state["agent"]["environment"]["runtimeReconciliation"]
        assert recon["status"] == "applied"
        assert "ffmpeg" in recon["lastError"] and "broken" in recon["lastError"]

        key = c.post(f"/v1/workspaces/default/agents/{slug}/keys", json={"name": "t"})
        secret = key.json()["secret"]
    script = (
        "set -e; cd ~; for n in local-one git-one tar-one; do"
        " head -n 2 .agents/skills/$n/SKILL.md | tail -n 1;"
        ' test "$(readlink .claude/skills/$n)" = "../../.agents/skills/$n";'
        ' test "$(stat -c %u .agents/skills/$n/SKILL.md)" = "$(id -u)"; done;'
        " test ! -e .agents/skills/broken; test ! -e .agents/skills/git-one/.git;"
        ' grep -q \'"T": "${T}"\' .agents/mcp.json; grep -q gh-mcp .agents/mcp.json'
    )
    with runyard.client(secret) as rc:
        ran = send_json(rc, "POST", f"/v1/agents/{agent_id}/exec", {"input": script})
        assert ran.status_code == 200, ran.text
        assert ran.json()["output"]["text"].splitlines() == [
            "name: local-one",
            "name: git-one",
            "name: tar-one",
        ]

    with runyard.client() as c:
        local = caps["local-one"]["id"]
        resp = send_json(
            c,
            "PATCH",
            f"/v1/workspaces/default/agents/{slug}/capabilities/{local}",
            {"capability": {"status": "disabled"}},
        )
        assert resp.status_code == 200, resp.text
        gone = c.delete(
            f"/v1/workspaces/default/agents/{slug}/capabilities/{caps['tar-one']['id']}"
        )
        assert gone.status_code == 200, gone.text
        state = _settled(c, slug)
        assert _by_name(state)["local-one"]["evidence"]["status"] is None
    check = (
        "cd ~; test ! -e .agents/skills/local-one && test ! -L .claude/skills/local-one"
        " && test ! -e .agents/skills/tar-one && test -f .claude/skills/git-one/SKILL.md"
        " && echo clean"
    )
    with runyard.client(secret) as rc:
        ran = send_json(rc, "POST", f"/v1/agents/{agent_id}/exec", {"input": check})
        assert ran.status_code == 200, ran.text
        assert ran.json()["output"]["text"].strip() == "clean"
