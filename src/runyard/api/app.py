"""``create_app``: the ASGI application for all surfaces over one ``Services``.

The app holds no globals: the services are built by the entry point and
attached to ``app.state``. A small middleware caps request bodies so that
no client can make the server buffer unbounded input.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runyard import __version__
from runyard.api.errors import SurfaceRenderers, install_error_handler, native_envelope
from runyard.api.routers import (
    async_runs,
    capabilities,
    control,
    runtime,
    schedules,
    secrets,
    uragents,
    warp,
)
from runyard.errors import PayloadTooLarge
from runyard.services.container import Services


class BodyLimit:
    """Reject request bodies over ``limit`` bytes with 413 in the surface's envelope.

    A declared ``Content-Length`` over the limit is refused before reading.
    Otherwise (chunked bodies, lying lengths) the body is read here, up to the
    limit, and replayed to the app: the 413 is decided before any handler or
    body parser runs, so it cannot be re-labelled as a parse error.
    """

    def __init__(self, app: ASGIApp, limit: int, renderers: SurfaceRenderers) -> None:
        self.app = app
        self.limit = limit
        self.renderers = renderers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body: let the app see that.
                await self.app(scope, _replay([message], receive), send)
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = PayloadTooLarge(f"request body is larger than {self.limit} bytes")
        response = self.renderers.for_path(scope.get("path", ""))(err)
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that first returns ``messages``, then defers to the real one."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="runyard",
        version=__version__,
        description="Self-hosted runtime for AI agents.",
    )
    app.state.services = services
    renderers = SurfaceRenderers(default=native_envelope)
    install_error_handler(app, renderers)
    app.include_router(control.router)
    app.include_router(runtime.router)
    app.include_router(async_runs.router)
    app.include_router(secrets.router)
    app.include_router(capabilities.router)
    app.include_router(schedules.router)
    app.include_router(uragents.router)
    renderers.add("/v1/events", uragents.envelope)
    warp.register(app, renderers)

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "store": services.store.backend}

    limit = services.settings.max_input_bytes * 2 + 65_536
    app.add_middleware(BodyLimit, limit=limit, renderers=renderers)
    return app
