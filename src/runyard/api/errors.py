"""The one exception handler: classify any exception, render it per surface.

Everything becomes a :class:`~runyard.errors.RunyardError` first (request
validation -> ``BAD_REQUEST``, unknown routes -> ``NOT_FOUND``, anything
unexpected -> ``INTERNAL``), then the surface that owns the path renders it
in its own envelope. The native envelope is
``{"defined": true, "code", "status", "message", "data"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runyard.errors import BadRequest, Internal, NotFound, RunyardError

log = logging.getLogger("runyard.api")

Renderer = Callable[[RunyardError], JSONResponse]

_VALUE_ERROR_PREFIX = "Value error, "

_HTTP_CODES = {
    400: BadRequest,
    404: NotFound,
}


class MethodNotAllowed(RunyardError):
    code = "METHOD_NOT_ALLOWED"
    status = 405
    retryable = False


class UnsupportedMediaType(RunyardError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415
    retryable = False


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def _message(error: dict[str, Any]) -> str:
    """Pydantic's message without its ``"Value error, "`` prefix: our own rules read cleanly."""
    msg = str(error.get("msg", ""))
    if error.get("type") == "value_error" and msg.startswith(_VALUE_ERROR_PREFIX):
        return msg[len(_VALUE_ERROR_PREFIX) :]
    return msg


def _validation(exc: RequestValidationError) -> RunyardError:
    errors = [
        {"field": _loc(tuple(e.get("loc", ()))), "message": _message(e), "type": e.get("type")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    if first.get("type") == "json_invalid":
        return BadRequest("request body is not valid JSON", {"errors": errors})
    if first.get("type") == "missing" and first["field"] == "body":
        return BadRequest("a JSON request body is required", {"errors": errors})
    message = f"{first['field']}: {first['message']}"
    return BadRequest(message, {"errors": errors})


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def classify(exc: Exception, content_type: str | None = None) -> RunyardError:
    if isinstance(exc, RunyardError):
        return exc
    if isinstance(exc, RequestValidationError):
        whole_body = any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors())
        if whole_body and not _is_json(content_type):
            return UnsupportedMediaType(
                "request body must be JSON: send 'Content-Type: application/json'"
            )
        return _validation(exc)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 405:
            return MethodNotAllowed("method not allowed on this path")
        if exc.status_code == 415:
            return UnsupportedMediaType(str(exc.detail))
        cls = _HTTP_CODES.get(exc.status_code)
        if cls is not None:
            return cls("no such endpoint" if exc.status_code == 404 else str(exc.detail))
    log.error("unhandled error", exc_info=exc)
    return Internal("internal error")


def native_envelope(err: RunyardError) -> JSONResponse:
    return JSONResponse(
        status_code=err.status,
        content={
            "defined": True,
            "code": err.code,
            "status": err.status,
            "message": err.message,
            "data": err.data,
        },
    )


class SurfaceRenderers:
    """Maps path prefixes to the envelope their surface documents; longest prefix wins."""

    def __init__(self, default: Renderer) -> None:
        self._default = default
        self._by_prefix: list[tuple[str, Renderer]] = []

    def add(self, prefix: str, renderer: Renderer) -> None:
        self._by_prefix.append((prefix, renderer))
        self._by_prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def for_path(self, path: str) -> Renderer:
        for prefix, renderer in self._by_prefix:
            if path.startswith(prefix):
                return renderer
        return self._default


def install_error_handler(app: FastAPI, renderers: SurfaceRenderers) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        err = classify(exc, request.headers.get("content-type"))
        return renderers.for_path(request.url.path)(err)

    for exc_type in (RunyardError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(exc_type, handle)
