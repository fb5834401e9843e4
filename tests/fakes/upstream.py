"""A scripted fake model provider: OpenAI Chat Completions, Responses, Anthropic Messages.

There is no network here, so this is the one model provider tests may use.
It is a real HTTP server (starlette under uvicorn, in a thread) on
127.0.0.1, speaking the three protocols streaming and not, with the
providers' wire shapes, realistic usage blocks and error envelopes. It
answers from a queue of scripted replies and records every request it got.

Scripting::

    from tests.fakes.upstream import FakeUpstream, error, reply, tool_call

    with FakeUpstream(api_key="sk-test-123") as fake:
        fake.script_openai_chat([
            tool_call("read_file", {"path": "README.md"}),        # turn 1: a tool call
            reply("The README says hello.", input_tokens=40),      # turn 2: text
        ])
        # point the client (or runyard's gateway) at fake.openai_base_url
        ...
        assert fake.requests[0].headers["authorization"] == "Bearer sk-test-123"
        assert fake.requests[1].body["messages"][-1]["role"] == "tool"

- :func:`reply` (text, optional ``tool_calls=[ToolCall(...)]``, token counts),
  :func:`tool_call` (a reply with one tool call), :func:`error` (an HTTP
  error in the protocol's envelope). A queue entry may also be a callable
  ``(RecordedRequest) -> Reply`` that decides from the request.
- ``script_openai_chat`` / ``script_openai_responses`` / ``script_anthropic_messages``
  queue replies for one protocol; ``script`` queues replies any protocol may
  take. A request takes from its protocol's queue first, then the shared one.
  With both empty it gets the ``default`` reply if one was given, else a 500
  saying the script ran out (so a test notices).
- ``api_key``: when set, requests must carry it (``Authorization: Bearer`` for
  OpenAI, ``x-api-key`` for Anthropic) or get a 401 whose message echoes a
  masked form of the key they sent, as OpenAI does. Anthropic requests also
  need ``anthropic-version``, as the real API does.
- ``reply(..., hold=True)`` stops a stream halfway (or delays a whole answer)
  until ``fake.release()``; ``reply(..., cut=True)`` drops the connection
  halfway through the stream.
- ``requests`` lists :class:`RecordedRequest` (protocol, path, query,
  lower-cased headers, JSON body; ``.model``, ``.stream``), recorded before the
  key is checked; ``requests_for(protocol)`` filters them, ``pending()``
  counts scripted replies not taken yet, ``reset()`` empties both.
- URLs: ``openai_base_url`` (``http://127.0.0.1:PORT/v1``) for OpenAI clients,
  ``anthropic_base_url`` (no ``/v1``) for Anthropic clients.
- Chat streams include the final usage chunk only when the request asked for
  it with ``stream_options.include_usage``, as OpenAI does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.script import (
    RecordedRequest,
    Reply,
    Scripted,
    ToolCall,
    error,
    reply,
    tool_call,
)
from tests.fakes.wire import RENDERERS, error_type

PROTOCOLS = ("chat_completions", "responses", "messages")


class FakeUpstream:
    """The fake provider; a context manager that starts and stops its server."""

    def __init__(self, *, api_key: str | None = None, default: Reply | None = None) -> None:
        self.api_key = api_key
        self.default = default
        self._lock = threading.Lock()
        self._queues: dict[str | None, deque[Scripted]] = {p: deque() for p in (*PROTOCOLS, None)}
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._released = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------

    def start(self) -> FakeUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for OpenAI clients (``…/v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for Anthropic clients (they add ``/v1/messages``)."""
        return self.url

    # ---- scripting -------------------------------------------------------------

    def script(self, *replies: Scripted) -> None:
        """Queue replies that a request of any protocol may take."""
        self._queue(None, replies)

    def script_openai_chat(self, replies: Iterable[Scripted]) -> None:
        self._queue("chat_completions", replies)

    def script_openai_responses(self, replies: Iterable[Scripted]) -> None:
        self._queue("responses", replies)

    def script_anthropic_messages(self, replies: Iterable[Scripted]) -> None:
        self._queue("messages", replies)

    def release(self) -> None:
        """Let streams scripted with ``hold=True`` finish."""
        self._released.set()

    def pending(self) -> int:
        """How many scripted replies no request has taken yet."""
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, protocol: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.protocol == protocol]

    def reset(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self._requests.clear()
        self._released = threading.Event()  # a stream still held keeps the old, set one

    def _queue(self, protocol: str | None, replies: Iterable[Scripted]) -> None:
        with self._lock:
            self._queues[protocol].extend(replies)

    def _take(self, recorded: RecordedRequest) -> Reply | None:
        with self._lock:
            for key in (recorded.protocol, None):
                if self._queues[key]:
                    entry = self._queues[key].popleft()
                    break
            else:
                return self.default
        return entry(recorded) if callable(entry) else entry

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # ---- the server ------------------------------------------------------------

    def _app(self) -> Starlette:
        def route(path: str, protocol: str) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._handle(protocol, request)

            return Route(path, endpoint, methods=["POST"])

        return Starlette(
            routes=[
                route("/v1/chat/completions", "chat_completions"),
                route("/v1/responses", "responses"),
                route("/v1/messages", "messages"),
            ]
        )

    async def _handle(self, protocol: str, request: Request) -> Response:
        render = RENDERERS[protocol]
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return render.error(400, "invalid_request_error", "body must be a JSON object")
        recorded = RecordedRequest(
            protocol=protocol,
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        with self._lock:
            self._requests.append(recorded)
        refusal = self._check_auth(protocol, recorded.headers)
        if refusal is not None:
            return render.error(401, "authentication_error", refusal)
        if not isinstance(body.get("model"), str):
            return render.error(400, "invalid_request_error", "model: field required")
        scripted = self._take(recorded)
        if scripted is None:
            return render.error(500, "api_error", "fake upstream: no scripted reply left")
        if scripted.status >= 400:
            kind = scripted.error_type or error_type(scripted.status)
            response = render.error(scripted.status, kind, scripted.error_message)
            response.headers.update(dict(scripted.headers))
            return response
        n = self._next_id()
        if recorded.stream:
            events = list(render.stream(scripted, recorded, n))
            stop_at = len(events) // 2 if scripted.hold or scripted.cut else None
            stream = self._sse(events, stop_at, scripted.cut)
            return StreamingResponse(stream, media_type="text/event-stream")
        if scripted.hold:
            await self._held()
        return JSONResponse(render.body(scripted, recorded.body["model"], n))

    def _check_auth(self, protocol: str, headers: dict[str, str]) -> str | None:
        if protocol == "messages" and "anthropic-version" not in headers:
            return "anthropic-version: header is required"
        if self.api_key is None:
            return None
        if protocol == "messages":
            return None if headers.get("x-api-key") == self.api_key else "invalid x-api-key"
        sent = headers.get("authorization", "").removeprefix("Bearer ")
        if sent == self.api_key:
            return None
        masked = sent[:3] + "*" * max(len(sent) - 7, 0) + sent[-4:] if len(sent) > 7 else sent
        return f"Incorrect API key provided: {masked}. You can find your API key elsewhere."

    async def _sse(
        self, events: list[tuple[str | None, object]], stop_at: int | None, cut: bool
    ) -> AsyncIterator[bytes]:
        for index, (name, data) in enumerate(events):
            if index == stop_at and cut:
                raise _StreamCut("scripted cut: the fake provider drops the connection")
            if index == stop_at:
                await self._held()
            yield _event(name, data)

    async def _held(self) -> None:
        gate = self._released
        while not gate.is_set() and not self._stopping():
            await asyncio.sleep(0.01)

    def _stopping(self) -> bool:
        return self._server is None or self._server.should_exit


class _StreamCut(Exception):
    """Raised inside a streaming response: uvicorn then drops the connection mid-body."""


def _event(name: str | None, data: object) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {payload}\n\n".encode()


__all__ = [
    "FakeUpstream",
    "RecordedRequest",
    "Reply",
    "Scripted",
    "ToolCall",
    "error",
    "reply",
    "tool_call",
]
