"""The gateway's failures, and how they are made safe to show inside a sandbox.

Every refusal or upstream failure is a :class:`GatewayError` in runyard's one
error tree (:mod:`runyard.errors`); each client protocol renders it in its
own error envelope (:mod:`runyard.gateway.protocols`). Text that came from a
provider passes through :func:`scrub` first: the sandbox must never learn the
provider credential, not even a fragment a provider echoes back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from runyard.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, RunyardError

MAX_MESSAGE = 500
REDACTED = "[redacted]"
FRAGMENT = 8  # any run of this many characters of the key is redacted too


class GatewayError(RunyardError):
    """Base of the gateway's errors; ``reason`` is the snake-case code clients see."""

    reason: ClassVar[str] = "gateway_error"

    def client_status(self) -> int:
        """The HTTP status the sandboxed client receives."""
        return self.status


class InvalidModelPolicy(GatewayError, BadRequest):
    """The agent's model policy cannot configure a gateway (unknown provider, no model…)."""

    reason = "invalid_model_policy"


class InvalidModelRequest(GatewayError, BadRequest):
    """The client's request is not something the gateway can forward."""

    reason = "invalid_request"


class ProtocolMismatch(GatewayError, BadRequest):
    """The client spoke a protocol of another family than the agent's provider."""

    reason = "protocol_mismatch"


class ModelNotAllowed(GatewayError, Forbidden):
    """The requested model is not in the agent's allowed set."""

    reason = "model_not_allowed"


class UnknownEndpoint(GatewayError, NotFound):
    """No gateway endpoint at this path."""

    reason = "not_found"


class MethodNotAllowed(GatewayError):
    """A known path asked with the wrong method."""

    code = "METHOD_NOT_ALLOWED"
    status = 405
    retryable = False
    reason = "method_not_allowed"


class RequestTooLarge(GatewayError, PayloadTooLarge):
    """The request body is larger than the gateway accepts."""

    reason = "request_too_large"


class UpstreamUnavailable(GatewayError):
    """The provider could not be reached (refused, DNS, reset, TLS, broken body)."""

    code = "UPSTREAM_UNAVAILABLE"
    status = 502
    retryable = True
    reason = "upstream_unavailable"


class UpstreamTimedOut(GatewayError):
    """The provider accepted the connection but did not answer in time."""

    code = "UPSTREAM_TIMEOUT"
    status = 504
    retryable = True
    reason = "upstream_timeout"


class UpstreamRejected(GatewayError):
    """The provider answered with an error; a 4xx status is passed through as is."""

    code = "UPSTREAM_REJECTED"
    status = 502
    retryable = False
    reason = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        upstream_type: str | None = None,
        retry_after: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, {"upstreamStatus": upstream_status, **(data or {})})
        self.upstream_status = upstream_status
        self.upstream_type = upstream_type
        self.retry_after = retry_after

    def client_status(self) -> int:
        return self.upstream_status if 400 <= self.upstream_status < 500 else 502


def scrub(text: str, secret: str | None, limit: int = MAX_MESSAGE) -> str:
    """``text`` without ``secret`` or any run of :data:`FRAGMENT` of its characters, shortened.

    Providers echo keys in error messages (often masked, ``sk-abc***xyz``);
    redacting every fragment keeps even a partial key from reaching the sandbox.
    """
    if secret:
        text = text.replace(secret, REDACTED)
        for start in range(max(len(secret) - FRAGMENT + 1, 0)):
            fragment = secret[start : start + FRAGMENT]
            if fragment in text:
                text = text.replace(fragment, REDACTED)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
