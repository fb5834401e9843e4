"""The Python SDK against a real ``runyard up``, and the async client in-process over ASGI.

The sync and async clients share one core, so the full method surface is
exercised on the sync client against the started server, and the async
client is checked against the same server (with a worker, so exec works)
and in-process through ``httpx.ASGITransport`` over ``create_app`` with
real services on SQLite (no worker there: control plane and reads only).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard.api.app import create_app
from runyard.errors import (
    BadRequest,
    ConfigError,
    Forbidden,
    NotFound,
    RunFailed,
    RunTimedOut,
    RunyardError,
    Unauthorized,
)
from runyard.sdk import (
    AsyncClient,
    Client,
    ConnectionFailed,
    UnexpectedResponse,
    load_credentials,
    resolve_connection,
)
from runyard.services.container import Services
from runyard.settings import load_settings
from runyard.store.sqlite import SqliteStore
from tests.conftest import Server, free_port


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.base_url, server.workspace_key) as c:
        yield c


# -- credentials -------------------------------------------------------------------


def test_load_credentials_reads_what_runyard_up_wrote(server: Server, tmp_path: Path) -> None:
    creds = load_credentials(server.data_dir)
    assert creds is not None
    assert (creds.base_url, creds.workspace, creds.api_key) == (
        server.base_url,
        "default",
        server.workspace_key,
    )
    assert load_credentials(tmp_path) is None
    (tmp_path / "credentials.json").write_text('{"baseUrl": "http://x", "workspace": "w"}')
    with pytest.raises(ConfigError, match="workspaceKey"):
        load_credentials(tmp_path)
    (tmp_path / "credentials.json").write_text("not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_credentials(tmp_path)


def test_resolve_connection_precedence(server: Server, tmp_path: Path) -> None:
    data = str(server.data_dir)
    from_file = resolve_connection(data_dir=data, env={})
    assert (from_file.base_url, from_file.api_key) == (server.base_url, server.workspace_key)
    env = {
        "RUNYARD_BASE_URL": "http://env:1",
        "RUNYARD_API_KEY": "sk_env",
        "RUNYARD_WORKSPACE": "w",
    }
    from_env = resolve_connection(data_dir=data, env=env)
    assert (from_env.base_url, from_env.api_key, from_env.workspace) == (
        "http://env:1",
        "sk_env",
        "w",
    )
    explicit = resolve_connection(base_url="http://arg:2", api_key="sk_arg", data_dir=data, env=env)
    assert (explicit.base_url, explicit.api_key, explicit.workspace) == (
        "http://arg:2",
        "sk_arg",
        "w",
    )
    via_env_dir = resolve_connection(env={"RUNYARD_DATA_DIR": data})
    assert via_env_dir.api_key == server.workspace_key
    assert "sk_" not in repr(via_env_dir)
    with pytest.raises(ConfigError, match="no API key"):
        resolve_connection(data_dir=tmp_path, env={})


def test_discover_builds_a_working_client(server: Server, agent: dict[str, Any]) -> None:
    with Client.discover(data_dir=server.data_dir, env={}) as c:
        assert c.get_agent(agent["agent"]["slug"])["agent"]["id"] == agent["agent"]["id"]
        assert "sk_" not in repr(c)


def test_bad_base_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="base URL"):
        Client("localhost:8750", "sk_x")
    with pytest.raises(ConfigError, match="API key"):
        Client("http://localhost:8750", "")


# -- the sync client, end to end ----------------------------------------------------------


def test_control_plane_round_trip(client: Client) -> None:
    created = client.create_agent(
        "Sdk Round Trip", runtime_policy={"maxConcurrentRuns": 2}, model_policy={"model": "m"}
    )
    agent_id, slug = created["agent"]["id"], created["agent"]["slug"]
    assert slug == "sdk-round-trip"
    assert created["agent"]["runtimePolicy"]["maxConcurrentRuns"] == 2
    # The same agent either way; its environment may move on between the two reads.
    by_slug, by_id = client.get_agent(slug)["agent"], client.get_agent(agent_id)["agent"]
    for doc in (by_slug, by_id):
        doc.pop("environment", None)
        doc.pop("updatedAt", None)
    assert by_slug == by_id

    renamed = client.rename_agent(agent_id, "Sdk Renamed")
    assert renamed["agent"]["slug"] == "sdk-renamed"
    patched = client.update_agent("sdk-renamed", slug="sdk-patched")
    assert patched["agent"]["slug"] == "sdk-patched" and patched["agent"]["name"] == "Sdk Renamed"

    targets = [
        {"harnessName": "shell", "enabled": True, "role": "default"},
        {"harnessName": "command", "enabled": False, "role": "available"},
    ]
    assert client.set_harnesses(agent_id, targets)["agent"]["harnessTargets"] == targets

    issued = client.create_key("sdk-patched", name="one")
    assert issued["secret"].startswith("sk_agent_") and issued["key"]["name"] == "one"
    assert [k["id"] for k in client.list_keys(agent_id)["keys"]] == [issued["key"]["id"]]
    revoked = client.revoke_key(agent_id, issued["key"]["id"])
    assert revoked["key"]["revokedAt"] is not None

    with pytest.raises(BadRequest) as wrong:
        client.delete_agent(agent_id, confirmation_slug="not-it")
    assert wrong.value.data["expected"] == "sdk-patched"
    deleted = client.delete_agent(agent_id, confirmation_slug="sdk-patched")
    assert deleted == {"deleted": True, "agent": {"id": agent_id, "slug": "sdk-patched"}}
    with pytest.raises(NotFound):
        client.get_agent(agent_id)


def test_list_agents_pages(client: Client, agent: dict[str, Any]) -> None:
    client.create_agent("Sdk Page Helper")
    first = client.list_agents(limit=1)
    assert len(first["agents"]) == 1 and first["hasMore"] is True
    second = client.list_agents(limit=1, cursor=first["nextCursor"])
    assert second["agents"][0]["agent"]["id"] != first["agents"][0]["agent"]["id"]


def test_exec_and_runs(client: Client, agent: dict[str, Any]) -> None:
    slug, agent_id = agent["agent"]["slug"], agent["agent"]["id"]
    status = client.status(agent_id)
    assert set(status) == {"daemonVersion", "ok", "status"}
    done = client.exec(slug, "pwd", cwd="c", workspace_path="w", timeout_seconds=30)
    assert done["output"]["text"].rstrip().endswith("/w/c")
    assert done["harness"] == "shell"
    assert client.status(slug)["daemonVersion"] == status["daemonVersion"]
    warned = client.exec(agent_id, "echo s", session_id="sess", harness="shell")
    assert warned["warnings"] == ["sessionId is ignored by the shell harness"]

    runs = client.list_runs(slug, limit=1)
    assert [r["id"] for r in runs["runs"]] == [warned["runId"]] and runs["hasMore"] is True
    older = client.list_runs(agent_id, cursor=runs["nextCursor"])
    assert [r["id"] for r in older["runs"]] == [done["runId"]]
    run = client.get_run(slug, done["runId"])["run"]
    assert run["status"] == "completed" and run["request"]["timeoutSeconds"] == 30
    with pytest.raises(NotFound):
        client.get_run(slug, "run_missing")


def test_exec_failures_raise_run_errors_with_run_id(client: Client, agent: dict[str, Any]) -> None:
    slug = agent["agent"]["slug"]
    with pytest.raises(RunFailed) as failed:
        client.exec(slug, "exit 7")
    assert failed.value.status == 502 and failed.value.code == "RUN_FAILED"
    assert "status 7" in failed.value.message
    run_id = failed.value.data["runId"]
    assert client.get_run(slug, run_id)["run"]["status"] == "failed"
    with pytest.raises(RunTimedOut) as timed_out:
        client.exec(slug, "sleep 30", timeout_seconds=1)
    assert timed_out.value.data["runId"].startswith("run_")
    with pytest.raises(BadRequest) as bad:
        client.exec(slug, "pwd", cwd="/etc")
    assert "cwd" in bad.value.message


# -- error mapping -----------------------------------------------------------------------


def test_errors_map_to_the_one_error_tree(server: Server, client: Client) -> None:
    with pytest.raises(NotFound, match="no-such"):
        client.get_agent("no-such")
    with pytest.raises(NotFound):
        client.get_agent("agent_00000000000000000000000000")
    with Client(server.base_url, "sk_workspace_nope") as bad_key, pytest.raises(Unauthorized):
        bad_key.list_agents()
    with (
        Client(server.base_url, server.workspace_key, "other-ws") as other,
        pytest.raises(NotFound, match="other-ws"),
    ):
        other.list_agents()
    with pytest.raises(BadRequest) as bad:
        client.create_agent("x", slug="Not A Slug")
    assert bad.value.data["errors"][0]["field"] == "slug"


def test_agent_runtime_key(server: Server, client: Client, agent: dict[str, Any]) -> None:
    secret = client.create_key(agent["agent"]["id"])["secret"]
    with Client(server.base_url, secret) as runtime:
        assert runtime.exec(agent["agent"]["id"], "echo rt")["output"]["text"] == "rt\n"
        with pytest.raises(Forbidden, match="agent_"):
            runtime.exec(agent["agent"]["slug"], "echo rt")
        with pytest.raises(Forbidden):
            runtime.list_agents()


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "sk_x") as c, pytest.raises(ConnectionFailed) as refused:
        c.list_agents()
    assert f"cannot reach runyard at {url}; is `runyard up` running?" in refused.value.message
    assert isinstance(refused.value, RunyardError)


class _NotRunyard(BaseHTTPRequestHandler):
    """A web server that is not runyard: HTML pages and JSON that is no envelope."""

    def do_GET(self) -> None:
        routes = {
            "/v1/workspaces/default/agents": (200, "text/html", b"<html>welcome</html>"),
            "/v1/workspaces/default/agents/array": (200, "application/json", b"[1, 2]"),
            "/v1/workspaces/default/agents/proxy": (502, "text/html", b"<h1>Bad Gateway</h1>"),
            "/v1/workspaces/default/agents/odd": (200, "application/json", b'{"x": 1}'),
        }
        status, ctype, body = routes.get(self.path, (404, "application/json", b'{"x": 1}'))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def not_runyard() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotRunyard)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_responses_that_are_not_runyard_documents(not_runyard: str) -> None:
    with Client(not_runyard, "sk_x") as c:
        with pytest.raises(UnexpectedResponse, match=r"not a JSON object.*welcome"):
            c.list_agents()
        with pytest.raises(UnexpectedResponse, match="not a JSON object"):
            c.get_agent("array")
        with pytest.raises(UnexpectedResponse, match=r"HTTP 502.*Bad Gateway") as proxy:
            c.get_agent("proxy")
        assert proxy.value.data["httpStatus"] == 502
        with pytest.raises(UnexpectedResponse, match="error envelope"):
            c.get_agent("other")
        # Resolving a slug needs agent.id from the answer; its absence is named, not a KeyError.
        with pytest.raises(UnexpectedResponse, match="no 'agent' field"):
            c.list_runs("odd")


# -- the async client ------------------------------------------------------------------------


def test_async_client_against_the_server(server: Server, agent: dict[str, Any]) -> None:
    async def scenario() -> tuple[dict[str, Any], ...]:
        async with AsyncClient.discover(data_dir=server.data_dir, env={}) as c:
            got = await c.get_agent(agent["agent"]["id"])
            ran, also = await asyncio.gather(
                c.exec(agent["agent"]["slug"], "echo async"),
                c.exec(agent["agent"]["id"], "echo twice"),
            )
            runs = await c.list_runs(agent["agent"]["slug"])
            try:
                await c.exec(agent["agent"]["slug"], "exit 2")
            except RunFailed as err:
                failed = err.data
            return got, ran, also, runs, failed

    got, ran, also, runs, failed = asyncio.run(scenario())
    assert got["agent"]["slug"] == agent["agent"]["slug"]
    assert ran["output"]["text"] == "async\n" and also["output"]["text"] == "twice\n"
    assert {ran["runId"], also["runId"]} <= {r["id"] for r in runs["runs"]}
    assert failed["runId"].startswith("run_")


@pytest.fixture
def asgi_app(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    settings = load_settings(env={}, data_dir=tmp_path)
    store = SqliteStore(settings.sqlite_path)
    store.migrate()
    services = Services.build(settings, store)
    _, key = services.workspaces.create("default")
    yield create_app(services), key
    store.close()


def test_async_client_in_process_over_asgi(asgi_app: tuple[Any, str]) -> None:
    app, key = asgi_app

    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://runyard.test", key, transport=transport) as c:
            made = [await c.create_agent(f"Asgi Agent {i}") for i in range(3)]
            page = await c.list_agents(limit=2)
            rest = await c.list_agents(limit=2, cursor=page["nextCursor"])
            by_id = await c.get_agent(made[0]["agent"]["id"])
            renamed = await c.rename_agent(made[1]["agent"]["id"], "Asgi Renamed")
            key_doc = await c.create_key("asgi-renamed", name="k")
            keys = await c.list_keys(made[1]["agent"]["id"])
            runs = await c.list_runs(made[2]["agent"]["slug"])
            errors = {}
            for name, call in {
                "missing": c.get_agent("missing"),
                "missing_id": c.get_agent("agent_00000000000000000000000000"),
                "bad_delete": c.delete_agent("asgi-agent-2", confirmation_slug="nope"),
            }.items():
                try:
                    await call
                except RunyardError as err:
                    errors[name] = err
            deleted = await c.delete_agent(made[2]["agent"]["id"], confirmation_slug="asgi-agent-2")
        async with AsyncClient("http://runyard.test", "sk_workspace_bad", transport=transport) as b:
            try:
                await b.list_agents()
            except Unauthorized as err:
                errors["bad_key"] = err
        return {
            "made": made,
            "page": page,
            "rest": rest,
            "by_id": by_id,
            "renamed": renamed,
            "key": key_doc,
            "keys": keys,
            "runs": runs,
            "errors": errors,
            "deleted": deleted,
        }

    out = asyncio.run(scenario())
    ids = [m["agent"]["id"] for m in out["made"]]
    listed = [a["agent"]["id"] for a in out["page"]["agents"] + out["rest"]["agents"]]
    assert listed == list(reversed(ids)) and out["rest"]["hasMore"] is False
    assert out["by_id"]["agent"]["slug"] == "asgi-agent-0"
    assert out["renamed"]["agent"]["slug"] == "asgi-renamed"
    assert [k["id"] for k in out["keys"]["keys"]] == [out["key"]["key"]["id"]]
    assert out["runs"] == {"runs": [], "hasMore": False, "nextCursor": None}
    assert isinstance(out["errors"]["missing"], NotFound)
    assert isinstance(out["errors"]["missing_id"], NotFound)
    assert isinstance(out["errors"]["bad_delete"], BadRequest)
    assert isinstance(out["errors"]["bad_key"], Unauthorized)
    assert out["deleted"]["agent"] == {"id": ids[2], "slug": "asgi-agent-2"}


def test_agent_id_is_resolved_across_pages_of_the_agent_list(asgi_app: tuple[Any, str]) -> None:
    app, key = asgi_app

    async def scenario() -> tuple[str, dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://runyard.test", key, transport=transport) as c:
            oldest = await c.create_agent("Oldest Agent")
            for i in range(100):
                await c.create_agent(f"Filler {i}")
            patched = await c.update_agent(
                oldest["agent"]["id"], runtime_policy={"maxConcurrentRuns": 3}
            )
            return oldest["agent"]["slug"], patched

    slug, patched = asyncio.run(scenario())
    assert patched["agent"]["slug"] == slug == "oldest-agent"
    assert patched["agent"]["runtimePolicy"]["maxConcurrentRuns"] == 3


def test_json_documents_are_plain_dicts(client: Client, agent: dict[str, Any]) -> None:
    doc = client.get_agent(agent["agent"]["slug"])
    assert type(doc) is dict
    assert json.loads(json.dumps(doc)) == doc
