"""The gateway and its per-run sessions: one HTTP server per run on a Unix socket.

The worker builds one :class:`Gateway` (it owns the pooled upstream
``httpx.AsyncClient``, whose transport tests may inject) and, per run,
:meth:`Gateway.open` serves that run's :class:`GatewayPolicy` on a socket
bound into the sandbox, where a bridge exposes it on 127.0.0.1. The session
routes requests to the client protocols, answers ``GET /v1/models`` itself
with the allowed models, and keeps the run's ledger: summed token usage and
one record per model call. :meth:`GatewaySession.close` stops the server
and ends in-flight requests (their calls are recorded as interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from runyard.gateway.errors import MethodNotAllowed, UnknownEndpoint
from runyard.gateway.forward import Forwarder
from runyard.gateway.http import MAX_BODY, Request, Response, serve_connection
from runyard.gateway.metering import Ledger, Usage
from runyard.gateway.policy import GatewayPolicy
from runyard.gateway.protocols import BY_PATH, protocol_for_errors

log = logging.getLogger("runyard.gateway")

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=30.0)
MODELS_PATHS = ("/v1/models", "/models")


class Gateway:
    """The worker's model gateway: shared upstream client, one session per run."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout or DEFAULT_TIMEOUT, follow_redirects=False
        )
        self._max_body = max_body

    async def open(
        self, socket_path: Path, policy: GatewayPolicy, owner_uid: int | None = None
    ) -> GatewaySession:
        """Serve ``policy`` on a new Unix socket at ``socket_path`` until the session closes.

        With ``owner_uid`` the socket belongs to that user and is private to it
        (0600); without, anyone who can reach the path may connect (0666).
        """
        forwarder = Forwarder(self._client, policy, Ledger())
        return await GatewaySession.start(socket_path, policy, forwarder, owner_uid, self._max_body)

    async def aclose(self) -> None:
        """Close the upstream client (at worker shutdown, after every session closed)."""
        await self._client.aclose()


class GatewaySession:
    """One run's gateway: its policy, its ledger, and the server on its socket."""

    def __init__(self, socket_path: Path, policy: GatewayPolicy, forwarder: Forwarder) -> None:
        self.socket_path = socket_path
        self.policy = policy
        self._forwarder = forwarder
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @classmethod
    async def start(
        cls,
        socket_path: Path,
        policy: GatewayPolicy,
        forwarder: Forwarder,
        owner_uid: int | None,
        max_body: int,
    ) -> GatewaySession:
        """Listen on ``socket_path``; :meth:`Gateway.open` is the way in."""
        session = cls(socket_path, policy, forwarder)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await session._serve(reader, writer, max_body)

        session._server = await asyncio.start_unix_server(handle, path=str(socket_path))
        try:
            if owner_uid is not None:
                os.chown(socket_path, owner_uid, owner_uid)
            os.chmod(socket_path, 0o600 if owner_uid is not None else 0o666)
        except OSError:
            await session.close()
            raise
        return session

    @property
    def usage(self) -> Usage:
        """The summed usage of every metered call so far."""
        return self._forwarder.ledger.usage

    @property
    def ledger(self) -> Ledger:
        """The session's ledger: usage, calls, calls in flight and a change hook."""
        return self._forwarder.ledger

    @property
    def calls(self) -> list[dict[str, Any]]:
        """One record per model call, in completion order (see ``CallRecord.to_wire``)."""
        return self._forwarder.ledger.calls

    def token_usage(self) -> dict[str, Any]:
        """The run's ``tokenUsage`` in the reference's shape."""
        return self.usage.to_wire()

    async def close(self) -> None:
        """Stop serving, end in-flight requests and remove the socket."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        with contextlib.suppress(OSError):
            self.socket_path.unlink()

    async def __aenter__(self) -> GatewaySession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await serve_connection(reader, writer, self._route, _render_error, max_body)
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)

    async def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        try:
            if path in MODELS_PATHS or path.startswith("/v1/models/"):
                if request.method != "GET":
                    raise MethodNotAllowed(f"{path} accepts GET")
                return self._models(path)
            protocol = BY_PATH.get(path)
            if protocol is None:
                raise UnknownEndpoint(
                    f"no gateway endpoint {path}; use POST /v1/chat/completions, "
                    "POST /v1/responses, POST /v1/messages or GET /v1/models"
                )
            if request.method != "POST":
                raise MethodNotAllowed(f"{path} accepts POST")
            return await self._forwarder.forward(protocol, request)
        except (UnknownEndpoint, MethodNotAllowed) as exc:
            return _render_error(path, request.headers, exc.status, exc.message)
        except Exception:
            log.exception("gateway bug on %s (run %s)", path, self.policy.run_id)
            return _render_error(path, request.headers, 500, "internal gateway error")

    def _models(self, path: str) -> Response:
        # One shape both SDK families read: OpenAI's list and Anthropic's page.
        entries = [
            {
                "id": model,
                "object": "model",
                "type": "model",
                "created": 0,
                "created_at": "1970-01-01T00:00:00Z",
                "owned_by": self.policy.provider,
                "display_name": model,
            }
            for model in sorted(self.policy.allowed_models)
        ]
        if path.startswith("/v1/models/"):
            wanted = path.removeprefix("/v1/models/")
            for entry in entries:
                if entry["id"] == wanted:
                    return Response.json(200, entry)
            return _render_error(path, {}, 404, f"model {wanted[:100]!r} is not available")
        return Response.json(
            200,
            {
                "object": "list",
                "data": entries,
                "has_more": False,
                "first_id": entries[0]["id"] if entries else None,
                "last_id": entries[-1]["id"] if entries else None,
            },
        )


def _render_error(path: str, headers: Mapping[str, str], status: int, message: str) -> Response:
    protocol = protocol_for_errors(path, headers)
    reason = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        status, "invalid_request" if status < 500 else "internal_error"
    )
    body = protocol.error_body(status, message, reason, None)
    return Response(status, [("content-type", "application/json")], body)
