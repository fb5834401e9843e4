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
    canvas,
    capabilities,
    control,
    runtime,
    schedules,
    secrets,
    spine,
    uragents,
    warp,
    webhooks,
)
from runyard.errors import PayloadTooLarge
from runyard.services.container import Services


class BodyLimit:
    """Reject request bodies over ``limit`` bytes with 413 in the surface's envelope.

    A declared ``Content-Length`` over the limit is refused before reading.
    Otherwise (chunked bodies, lying lengths) the body is read here, up to the
    limit, and replayed to the app: the 413 is decided before any handler or
    body parser runs, so it cannot be re-labelled as a parse error.

    Upload paths (``uploads``: exact paths that take files) get the larger
    ``upload_limit`` and are not buffered here: their body streams to the
    form parser (which spools files to disk) through a ``receive`` that counts
    bytes and raises :class:`PayloadTooLarge` past the limit, which the error
    handler renders as a 413 in the surface's envelope.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        renderers: SurfaceRenderers,
        uploads: frozenset[str] = frozenset(),
        upload_limit: int = 0,
    ) -> None:
        self.app = app
        self.limit = limit
        self.renderers = renderers
        self.uploads = uploads
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope.get("path", "") in self.uploads
        limit = self.upload_limit if upload else self.limit
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        if upload:
            await self.app(scope, _counting(receive, limit), send)
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
                await self._reject(scope, receive, send, self.limit)
                return
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        err = PayloadTooLarge(f"request body is larger than {limit} bytes")
        response = self.renderers.for_path(scope.get("path", ""))(err)
        await response(scope, receive, send)


def _counting(receive: Receive, limit: int) -> Receive:
    """A ``receive`` that raises :class:`PayloadTooLarge` once the body passes ``limit``."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        return message

    return counted


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

    # First, and without a thread hop: load balancers call it often, and every
    # route registered before it would be tried on each call.
    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "store": services.store.backend}

    app.include_router(control.router)
    app.include_router(runtime.router)
    app.include_router(async_runs.router)
    app.include_router(canvas.router)
    app.include_router(secrets.router)
    app.include_router(capabilities.router)
    app.include_router(schedules.router)
    app.include_router(webhooks.router)
    app.include_router(uragents.router)
    renderers.add("/v1/events", uragents.envelope)
    warp.register(app, renderers)
    spine.register(app, renderers)

    limit = services.settings.max_input_bytes * 2 + 65_536
    app.add_middleware(
        BodyLimit,
        limit=limit,
        renderers=renderers,
        uploads=spine.UPLOAD_PATHS,
        upload_limit=services.settings.max_upload_bytes,
    )
    return app
