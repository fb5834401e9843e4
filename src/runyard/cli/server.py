"""Server entry points: ``up``, ``serve``, ``worker``, ``migrate``, ``admin``.

These are the only places that build a store, settings and services; they
pass them down explicitly. ``up`` runs the API and a worker in one process
on SQLite; ``serve`` and ``worker`` split them so several of each can share
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runyard.domain.entities import KeyKind
from runyard.errors import RunyardError, SandboxUnavailable
from runyard.settings import Settings, load_settings

# The server stack (uvicorn, FastAPI, stores, sandboxes) is imported inside
# the commands that need it, so client commands of the same CLI start fast.
if TYPE_CHECKING:
    from runyard.sandbox import Substrate
    from runyard.services.container import Services
    from runyard.store import Store

log = logging.getLogger("runyard")

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./.runyard).")
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql://… (default: SQLite in the data dir)."),
]
HostOpt = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port to listen on.")]
SandboxOpt = Annotated[
    str | None, typer.Option("--sandbox", help="Sandbox substrate: bwrap or process (dev only).")
]


def _open(settings: Settings) -> Store:
    from runyard.store import open_store

    store = open_store(settings.database_url, settings.sqlite_path)
    store.migrate()
    return store


def _fail(err: RunyardError) -> typer.Exit:
    typer.echo(f"runyard: {err.message}", err=True)
    return typer.Exit(code=2)


def write_credentials(settings: Settings, workspace: str, key: str) -> Path:
    path = settings.credentials_path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"baseUrl": settings.base_url, "workspace": workspace, "workspaceKey": key}, fh)
        fh.write("\n")
    os.chmod(path, 0o600)
    return path


def bootstrap(services: Services, settings: Settings) -> str | None:
    """Create workspace ``default`` and its key on first start; returns the new key."""
    if services.workspaces.find("default") is not None:
        return None
    _, secret = services.workspaces.create("default")
    write_credentials(settings, "default", secret)
    return secret


def _quiet_server_class() -> type[Any]:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn without its own signal handling.

        uvicorn re-raises SIGINT/SIGTERM once it has stopped, which would kill
        the process before the worker drains its runs, the gateway closes and
        the agents' homes are unmounted. runyard handles the signals itself.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


async def run_processes(
    settings: Settings, services: Services, substrate: Substrate | None, api: bool
) -> None:
    import uvicorn

    from runyard.api.app import create_app
    from runyard.gateway.session import Gateway
    from runyard.harness import build_registry
    from runyard.worker.executor import Executor
    from runyard.worker.loop import Worker

    stop = asyncio.Event()
    gateway: Gateway | None = None
    tasks: list[asyncio.Task[None]] = []
    server: uvicorn.Server | None = None
    if substrate is not None:
        gateway = Gateway()
        executor = Executor(
            services.store,
            settings,
            substrate,
            build_registry(),
            secrets=services.secrets,
            gateway=gateway,
            signals=services.signals,
        )
        tasks.append(
            asyncio.create_task(
                Worker(services.store, settings, executor, services.signals).run(stop)
            )
        )
    loop = asyncio.get_running_loop()
    if api:
        config = uvicorn.Config(
            create_app(services),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="off",
        )
        server = _quiet_server_class()(config)

        def on_signal() -> None:
            assert server is not None
            server.should_exit = True
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await server.serve()
        stop.set()
    else:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    if gateway is not None:
        await gateway.aclose()


def _start(settings: Settings, api: bool, worker: bool, first_start: bool) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from runyard.sandbox import build_substrate
    from runyard.services.container import Services

    try:
        store = _open(settings)
    except RunyardError as err:
        raise _fail(err) from err
    services = Services.build(settings, store)
    substrate: Substrate | None = None
    try:
        if worker:
            substrate = build_substrate(settings)
            try:
                substrate.check()
            except SandboxUnavailable as err:
                typer.echo(
                    f"runyard: the {settings.substrate} sandbox cannot start: {err.message}\n"
                    "runyard never runs agents with weaker isolation than configured;"
                    " fix the above, or choose the development-only substrate explicitly"
                    " with --sandbox process.",
                    err=True,
                )
                raise typer.Exit(code=3) from err
        if first_start:
            secret = bootstrap(services, settings)
            if secret is not None:
                typer.echo("Created workspace 'default'. Its workspace key (shown once):")
                typer.echo(f"  {secret}")
                typer.echo(f"Saved to {settings.credentials_path} (mode 0600); the CLI uses it.")
        where = settings.database_url or f"SQLite at {settings.sqlite_path}"
        parts = [p for p, on in (("API", api), ("worker", worker)) if on]
        typer.echo(f"runyard {' + '.join(parts)} on {where}; sandbox: {settings.substrate}")
        if api:
            typer.echo(f"listening on {settings.base_url}")
        asyncio.run(run_processes(settings, services, substrate, api))
    except RunyardError as err:
        raise _fail(err) from err
    finally:
        if substrate is not None:
            substrate.shutdown()
        store.close()


def up(
    data_dir: DataDirOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    sandbox: SandboxOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Run the API and a worker in one process (embedded SQLite by default)."""
    settings = load_settings(
        data_dir=data_dir, host=host, port=port, substrate=sandbox, database_url=database_url
    )
    _start(settings, api=True, worker=True, first_start=True)


def serve(
    data_dir: DataDirOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Run the API only (stateless; share RUNYARD_DATABASE_URL with workers)."""
    settings = load_settings(data_dir=data_dir, host=host, port=port, database_url=database_url)
    _start(settings, api=True, worker=False, first_start=False)


def worker(
    data_dir: DataDirOpt = None,
    sandbox: SandboxOpt = None,
    database_url: DatabaseOpt = None,
    slots: Annotated[int | None, typer.Option("--slots", help="Runs executed at once.")] = None,
) -> None:
    """Run a worker only: claim runs from the shared store and execute them."""
    settings = load_settings(
        data_dir=data_dir, substrate=sandbox, database_url=database_url, worker_slots=slots
    )
    _start(settings, api=False, worker=True, first_start=False)


def migrate(data_dir: DataDirOpt = None, database_url: DatabaseOpt = None) -> None:
    """Create or upgrade the database schema."""
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    try:
        _open(settings).close()
    except RunyardError as err:
        raise _fail(err) from err
    typer.echo("schema is up to date")


admin = typer.Typer(help="Operator commands that act on the store directly.", no_args_is_help=True)


@admin.command("create-workspace")
def create_workspace(
    slug: str, data_dir: DataDirOpt = None, database_url: DatabaseOpt = None
) -> None:
    """Create a workspace and print its first workspace key as JSON."""
    from runyard.services.container import Services

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    try:
        store = _open(settings)
        try:
            workspace, secret = Services.build(settings, store).workspaces.create(slug)
        finally:
            store.close()
    except RunyardError as err:
        raise _fail(err) from err
    typer.echo(json.dumps({"workspace": workspace.slug, "workspaceKey": secret}))


@admin.command("create-key")
def create_key(
    workspace: str,
    kind: Annotated[str, typer.Option("--kind", help="workspace or user")] = "user",
    name: Annotated[str, typer.Option("--name")] = "",
    data_dir: DataDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Issue a workspace or personal (user) key for WORKSPACE and print it as JSON."""
    if kind not in ("workspace", "user"):
        typer.echo("runyard: --kind must be workspace or user", err=True)
        raise typer.Exit(code=2)
    from runyard.services.container import Services

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    try:
        store = _open(settings)
        try:
            svc = Services.build(settings, store)
            ws = svc.workspaces.get(workspace)
            key, secret = svc.keys.issue(ws.id, KeyKind(kind), name=name)
        finally:
            store.close()
    except RunyardError as err:
        raise _fail(err) from err
    typer.echo(json.dumps({"workspace": workspace, "keyId": key.id, "kind": kind, "key": secret}))
