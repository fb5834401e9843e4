"""The I/O-free core of the SDK, shared by the sync and the async client.

A client method is a *plan*: a generator that yields :class:`RequestSpec`
values and receives each parsed JSON document back (or has the request's
:class:`~runyard.errors.RunyardError` thrown into it), and finally returns
the document the method answers with. The sync and the async client differ
only in how they send a spec, so everything else (URLs, bodies, response
parsing, error mapping, multi-step logic such as resolving an agent slug to
its id) lives here once.

Client-side failures (cannot connect, no answer in time, an answer that is
not a runyard document) are raised as members of runyard's one error tree,
so callers catch :class:`~runyard.errors.RunyardError` and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from runyard.errors import (
    ConnectionFailed,
    RequestTimedOut,
    RunyardError,
    UnexpectedResponse,
    error_from_envelope,
)

Document = dict[str, Any]
Plan = Generator["RequestSpec", Document, Document]

_SNIPPET = 200


_NO_BODY: Any = object()


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request of a plan, independent of the client that sends it."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = _NO_BODY
    timeout: float | None = None
    """Read timeout for this request only (``/exec`` waits longer than other calls)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers of this request only (``Idempotency-Key``)."""

    def httpx_kwargs(self, default_timeout: float) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request`` / ``httpx.AsyncClient.request``."""
        kwargs: dict[str, Any] = {
            "method": self.method,
            "url": self.path,
            "params": {k: v for k, v in self.params.items() if v is not None},
        }
        if self.body is not _NO_BODY:
            kwargs["json"] = self.body
        if self.headers:
            kwargs["headers"] = self.headers
        read = default_timeout if self.timeout is None else max(self.timeout, default_timeout)
        kwargs["timeout"] = httpx.Timeout(default_timeout, read=read)
        return kwargs


def one(spec: RequestSpec) -> Plan:
    """The plan of a method that is a single request answered by its document."""
    return (yield spec)


def field_of(doc: Document, *path: str) -> Any:
    """``doc[path[0]][path[1]]…``, or :class:`UnexpectedResponse` naming what is missing."""
    value: Any = doc
    for i, key in enumerate(path):
        if not isinstance(value, dict) or key not in value:
            where = ".".join(path[: i + 1])
            raise UnexpectedResponse(f"the server's answer has no {where!r} field")
        value = value[key]
    return value


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def parse_response(response: httpx.Response) -> Document:
    """The JSON object of a 2xx answer (``{}`` for 204), or raise the error the answer
    stands for."""
    where = f"{response.request.method} {response.request.url.path}"
    if response.status_code == 204:
        return {}  # No Content: the action succeeded and there is no document
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = _NO_BODY
    if response.is_success:
        if isinstance(payload, dict):
            return payload
        raise UnexpectedResponse(
            f"{where} answered HTTP {response.status_code} with a body that is not a JSON"
            f" object: {_snippet(response.text) or '(empty)'}",
            {"httpStatus": response.status_code},
        )
    if (
        isinstance(payload, dict)
        and isinstance(payload.get("code"), str)
        and isinstance(payload.get("message"), str)
    ):
        status = payload.get("status")
        data = payload.get("data")
        raise error_from_envelope(
            payload["code"],
            status if isinstance(status, int) else response.status_code,
            payload["message"],
            data if isinstance(data, dict) else None,
        )
    raise UnexpectedResponse(
        f"{where} answered HTTP {response.status_code} without a runyard error envelope:"
        f" {_snippet(response.text) or '(empty)'}",
        {"httpStatus": response.status_code},
    )


def transport_failure(exc: httpx.HTTPError, base_url: str) -> RunyardError:
    """Map an httpx failure to the error tree, with a message a person can act on."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectionFailed(
            f"cannot reach runyard at {base_url}; is `runyard up` running? ({exc})"
        )
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimedOut(f"runyard at {base_url} did not answer in time ({exc!r})")
    if isinstance(exc, httpx.TransportError):
        return ConnectionFailed(f"the connection to runyard at {base_url} failed: {exc!r}")
    return UnexpectedResponse(f"request to runyard at {base_url} failed: {exc!r}")


@dataclass(frozen=True)
class Done:
    """A plan has finished; ``result`` is the document its method returns."""

    result: Document


def advance(plan: Plan, outcome: Document | RunyardError | None) -> RequestSpec | Done:
    """Feed the previous request's outcome into ``plan``; ``None`` starts it.

    Returns the next request to send, or :class:`Done`. An error the plan does
    not handle propagates out of here unchanged.
    """
    try:
        if isinstance(outcome, RunyardError):
            return plan.throw(outcome)
        if outcome is None:
            return next(plan)
        return plan.send(outcome)
    except StopIteration as stop:
        return Done(stop.value)
