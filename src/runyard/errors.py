"""The one error tree of runyard.

Every failure a client can cause or observe is a :class:`RunyardError` with a
stable ``code``, an HTTP ``status``, a human ``message`` and optional ``data``.
Services raise these; each API surface renders them in its own envelope, so
the classification lives here once and never in the routers.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RunyardError(Exception):
    """Base of every error runyard raises on purpose."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool | None] = None

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = dict(data or {})
        if self.retryable is not None:
            self.data.setdefault("retryable", self.retryable)


class BadRequest(RunyardError):
    """The request is malformed or violates a validation rule."""

    code = "BAD_REQUEST"
    status = 400
    retryable = False


class Unauthorized(RunyardError):
    """No credentials, or credentials that match no live key."""

    code = "UNAUTHORIZED"
    status = 401
    retryable = False


class Forbidden(RunyardError):
    """A valid key used on a surface its scope does not cover."""

    code = "FORBIDDEN"
    status = 403
    retryable = False


class NotFound(RunyardError):
    """The object does not exist for this caller (other workspaces included)."""

    code = "NOT_FOUND"
    status = 404
    retryable = False


class Conflict(RunyardError):
    """The request collides with the current state of an object."""

    code = "CONFLICT"
    status = 409
    retryable = False


class PayloadTooLarge(RunyardError):
    """A body or field is larger than runyard accepts."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413
    retryable = False


class TooManyRequests(RunyardError):
    """A rate or concurrency limit was hit; retry later."""

    code = "TOO_MANY_REQUESTS"
    status = 429
    retryable = True


class ServiceUnavailable(RunyardError):
    """runyard cannot serve this now (capacity, provisioning, shutdown)."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    retryable = True


class RunFailed(RunyardError):
    """A synchronous run ended ``failed``; ``data.runId`` names it."""

    code = "RUN_FAILED"
    status = 502
    retryable = False


class RunTimedOut(RunyardError):
    """A synchronous run hit its ``timeoutSeconds`` and was killed."""

    code = "RUN_TIMED_OUT"
    status = 504
    retryable = False


class RunCancelled(RunyardError):
    """A synchronous run was cancelled before it completed."""

    code = "RUN_CANCELLED"
    status = 409
    retryable = False


class RunStillRunning(RunyardError):
    """The bounded wait of a synchronous call ended before the run did."""

    code = "RUN_PENDING"
    status = 504
    retryable = False


class Internal(RunyardError):
    """A bug or an unexpected failure inside runyard (never client input)."""

    code = "INTERNAL"
    status = 500
    retryable = True


class StoreError(RunyardError):
    """The store failed in a way that is not the client's fault."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    retryable = True


class ConfigError(RunyardError):
    """runyard's own configuration is invalid; raised at start, not per request."""

    code = "CONFIG"
    status = 500
    retryable = False


class SandboxUnavailable(RunyardError):
    """The configured sandbox substrate cannot be built on this host (fail closed)."""

    code = "SANDBOX_UNAVAILABLE"
    status = 503
    retryable = False


# ---- failures a client sees without a server answer (raised by the SDK) ------


class ClientFailure(RunyardError):
    """Base of the failures the SDK detects itself, before or without a runyard answer."""

    code = "CLIENT_FAILURE"
    status = 0


class ConnectionFailed(ClientFailure):
    """runyard could not be reached (refused, DNS, reset, TLS)."""

    code = "CONNECTION_FAILED"
    retryable = True


class RequestTimedOut(ClientFailure):
    """runyard accepted the connection but did not answer within the client timeout."""

    code = "CLIENT_TIMEOUT"
    retryable = True


class UnexpectedResponse(ClientFailure):
    """The server answered with something that is not a runyard JSON document."""

    code = "UNEXPECTED_RESPONSE"
    retryable = False


def _all_subclasses(cls: type[RunyardError]) -> list[type[RunyardError]]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_from_envelope(
    code: str, status: int, message: str, data: dict[str, Any] | None = None
) -> RunyardError:
    """Rebuild the error a server sent (used by the SDK), keeping one error tree.

    The most specific class with the same ``code`` and ``status`` is chosen;
    an unknown pair becomes a :class:`RemoteError` that carries both.
    """
    for cls in _all_subclasses(RunyardError):
        if cls.code == code and cls.status == status and cls is not RemoteError:
            return cls(message, data)
    return RemoteError(message, data, code=code, status=status)


class RemoteError(RunyardError):
    """An error envelope from a server whose code this client does not know."""

    def __init__(
        self, message: str, data: dict[str, Any] | None = None, *, code: str, status: int
    ) -> None:
        super().__init__(message, data)
        self.remote_code = code
        self.remote_status = status


# ---- failures the worker turns into run errors ---------------------------------


class HarnessUnavailable(RunyardError):
    """A harness this runyard cannot run (not installed here, or not configured)."""

    code = "HARNESS_UNAVAILABLE"
    status = 503
    retryable = False


class PathEscape(RunyardError):
    """A run's working directory would leave the agent's home (or cannot be used)."""

    code = "INVALID_PATH"
    status = 400
    retryable = False


class FetchError(RunyardError):
    """A capability's source could not be fetched or unpacked."""

    code = "FETCH_FAILED"
    status = 502
    retryable = True
