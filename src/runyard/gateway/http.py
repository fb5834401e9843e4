"""A small HTTP/1.1 server over an asyncio stream pair, built on h11.

The gateway runs one server per run inside the worker's event loop, on a
Unix socket, like the egress proxy. uvicorn is built for one server per
process (it takes over SIGINT/SIGTERM when started on the main thread), so
the gateway speaks HTTP itself through h11 (already a dependency of httpx):
keep-alive, chunked request bodies, ``Expect: 100-continue``, and streamed
responses flushed chunk by chunk, which is what SSE needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

MAX_HEAD = 65_536
MAX_BODY = 32 * 1024 * 1024
READ_SIZE = 65_536


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


@dataclass
class Response:
    """A whole body, or a ``stream`` of chunks; ``close`` always runs after sending."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    close: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def json(
        cls, status: int, payload: object, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, [("content-type", "application/json"), *(headers or [])], body)


Handler = Callable[[Request], Awaitable[Response]]
# Renders an error the HTTP layer itself detects: (path, headers, status, message).
ErrorRenderer = Callable[[str, Mapping[str, str], int, str], Response]


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    render_error: ErrorRenderer,
    max_body: int = MAX_BODY,
) -> None:
    """Serve requests on one connection until the client closes it or it breaks."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        while True:
            head: h11.Request | None = None
            try:
                head = await _next_head(conn, reader)
                if head is None:
                    return
                request = await _read_body(conn, reader, writer, head, max_body)
            except (_Reject, h11.RemoteProtocolError) as exc:
                if conn.our_state is h11.SEND_RESPONSE:
                    status, message = (
                        (exc.status, exc.message)
                        if isinstance(exc, _Reject)
                        else (400, "malformed HTTP request")
                    )
                    path, headers = _target(head) if head is not None else ("/", {})
                    response = render_error(path, headers, status, message)
                    response.headers.append(("connection", "close"))
                    await _send(conn, writer, response)
                return
            await _send(conn, writer, await handler(request))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (ConnectionError, OSError, h11.LocalProtocolError):
        return
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _receive(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Event:
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Event):
            return event
        if event is h11.PAUSED:  # cannot happen: each cycle is finished before the next
            raise h11.RemoteProtocolError("pipelined request before the previous answer")
        conn.receive_data(await reader.read(READ_SIZE))


async def _next_head(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Request | None:
    event = await _receive(conn, reader)
    if isinstance(event, h11.ConnectionClosed):
        return None
    if not isinstance(event, h11.Request):
        raise h11.RemoteProtocolError("expected a request")
    return event


def _target(head: h11.Request) -> tuple[str, dict[str, str]]:
    headers: dict[str, str] = {}
    for name, value in head.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return head.target.decode("latin-1").partition("?")[0] or "/", headers


async def _read_body(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    head: h11.Request,
    max_body: int,
) -> Request:
    path, headers = _target(head)
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise _Reject(413, f"request body larger than {max_body} bytes")
    if conn.client_is_waiting_for_100_continue:
        writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await _receive(conn, reader)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > max_body:
                raise _Reject(413, f"request body larger than {max_body} bytes")
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            raise h11.RemoteProtocolError("connection closed inside a request body")
    query = head.target.decode("latin-1").partition("?")[2]
    return Request(head.method.decode("ascii"), path, query, headers, b"".join(chunks))


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, response: Response) -> None:
    try:
        headers = list(response.headers)
        if response.stream is None:
            headers.append(("content-length", str(len(response.body))))
        reason = HTTPStatus(response.status).phrase.encode() if response.status in _KNOWN else b""
        writer.write(
            conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
            or b""
        )
        if response.stream is None:
            if response.body:
                writer.write(conn.send(h11.Data(data=response.body)) or b"")
        else:
            async for chunk in response.stream:
                if chunk:
                    writer.write(conn.send(h11.Data(data=chunk)) or b"")
                    await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
    finally:
        if response.close is not None:
            await response.close()


_KNOWN = frozenset(int(s) for s in HTTPStatus)
