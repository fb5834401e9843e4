"""The model gateway: how a sandboxed harness reaches a model without holding a key.

Per run the worker opens a :class:`GatewaySession` on a Unix socket bound
into the sandbox. The session speaks OpenAI Chat Completions, OpenAI
Responses and Anthropic Messages, enforces the agent's model policy, injects
the provider credential (and strips any the client sent), meters token usage
from the provider's responses and records each model call.

Modules: ``policy`` (what a session may do), ``protocols`` (the client
protocols), ``forward`` (one request upstream and back), ``metering`` (usage
and call records), ``sse`` (stream decoding), ``http`` (the small HTTP
server), ``session`` (the gateway and its sessions), ``errors``.
"""

from __future__ import annotations

from runyard.gateway.errors import (
    GatewayError,
    InvalidModelPolicy,
    InvalidModelRequest,
    ModelNotAllowed,
    ProtocolMismatch,
    UpstreamRejected,
    UpstreamTimedOut,
    UpstreamUnavailable,
)
from runyard.gateway.metering import Usage
from runyard.gateway.policy import DEFAULT_BASE_URLS, PROVIDERS, GatewayPolicy, Provider
from runyard.gateway.session import Gateway, GatewaySession

__all__ = [
    "DEFAULT_BASE_URLS",
    "PROVIDERS",
    "Gateway",
    "GatewayError",
    "GatewayPolicy",
    "GatewaySession",
    "InvalidModelPolicy",
    "InvalidModelRequest",
    "ModelNotAllowed",
    "ProtocolMismatch",
    "Provider",
    "UpstreamRejected",
    "UpstreamTimedOut",
    "UpstreamUnavailable",
    "Usage",
]
