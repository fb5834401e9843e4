"""Webhooks: the entities, the wire bodies, and the rules that need no I/O.

A webhook is a per-workspace HTTP endpoint subscribed to run events. When a
run's status changes, the store enqueues one *delivery* per subscribed
webhook in the same transaction (an outbox), with a frozen snapshot of the
run's support-safe fields; the worker's dispatcher POSTs it, signed, and
retries with exponential backoff. This module holds what both sides agree
on: the event types and which run status raises which, the payload rendered
from a snapshot (the same bytes on every attempt but for the signature's
timestamp), the signature scheme, the retry delay, and URL validation.
Resolving a host and judging its addresses is I/O and lives with the
service and the dispatcher.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pydantic import Field, field_validator

from runyard.domain.naming import is_encodable
from runyard.domain.policies import Strict
from runyard.types import iso_millis

EVENT_TYPES = ("run.started", "run.completed", "run.failed", "run.cancelled")
DEFAULT_EVENTS = ("run.started", "run.completed", "run.failed")
STATUS_EVENTS = {
    "running": "run.started",
    "completed": "run.completed",
    "partial": "run.completed",
    "failed": "run.failed",
    "timed_out": "run.failed",
    "cancelled": "run.cancelled",
}
"""Run status -> the event a change into it raises (other statuses raise none)."""

MAX_PER_WORKSPACE = 20
MAX_URL = 2048
MAX_DESCRIPTION = 500
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SIGNATURE_HEADER = "Runyard-Signature"
DEFAULT_TOLERANCE_SECONDS = 300
DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")


@dataclass(frozen=True)
class Webhook:
    id: str
    workspace_id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    secret_ciphertext: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class RunSnapshot:
    """The run as it was when the event was raised: only fields safe to send out."""

    id: str
    agent_id: str
    status: str
    source: str
    created_at: int
    started_at: int | None = None
    completed_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_retryable: bool | None = None


@dataclass(frozen=True)
class Delivery:
    id: str
    seq: int
    webhook_id: str
    workspace_id: str
    event_type: str
    status: str
    attempts: int
    created_at: int
    run: RunSnapshot
    next_attempt_at: int | None = None
    response_status: int | None = None
    last_error: str | None = None
    delivered_at: int | None = None


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a dispatcher holds under ``lease_token``, with where to send it."""

    delivery: Delivery
    url: str
    secret_ciphertext: str
    lease_token: str


# ---- payload and signature ---------------------------------------------------------


def payload(d: Delivery) -> dict[str, Any]:
    """The event document: ``{id, type, createdAt, data: {run}}``; never prompt or output."""
    run = d.run
    error = None
    if run.error_code is not None:
        error = {
            "code": run.error_code,
            "message": run.error_message,
            "retryable": run.error_retryable,
        }
    return {
        "id": d.id,
        "type": d.event_type,
        "createdAt": iso_millis(d.created_at),
        "data": {
            "run": {
                "id": run.id,
                "agentId": run.agent_id,
                "status": run.status,
                "source": run.source,
                "createdAt": iso_millis(run.created_at),
                "startedAt": iso_millis(run.started_at),
                "completedAt": iso_millis(run.completed_at),
                "error": error,
            }
        },
    }


def body(d: Delivery) -> bytes:
    """The exact bytes POSTed (and signed) for ``d``: compact JSON, ASCII only."""
    return json.dumps(payload(d), separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, raw: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    raw: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether ``header`` signs ``raw`` with ``secret`` within ``tolerance`` seconds of ``now``.

    Several ``v1=`` values are accepted (any may match), so a receiver keeps
    working while a sender signs with more than one secret.
    """
    stamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            stamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if stamp is None or not candidates or abs(now - stamp) > tolerance:
        return False
    expected = signature(secret, stamp, raw).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, c) for c in candidates)


def retry_delay(attempts: int, base: float, cap: float, rand: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1, 2, …).

    ``base · 2^(attempts-1)``, capped at ``cap``, then jittered down by up to
    half (``rand`` in [0, 1)) so that deliveries failed together spread out.
    """
    exponent = min(max(attempts - 1, 0), 62)
    delay = min(cap, base * 2.0**exponent)
    return delay * (1.0 - rand / 2.0)


# ---- URL validation ---------------------------------------------------------------------


def _hostname_ok(host: str) -> bool:
    if not host.isascii():
        return False
    labels = host.rstrip(".").split(".")
    return all(
        0 < len(label) <= 63
        and all(c.isalnum() or c in "-_" for c in label)
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )


def split_url(url: str) -> SplitResult:
    """Parse and check a webhook URL; ``ValueError`` saying what is wrong.

    http or https only, a host, no user info, no fragment, a valid port, an
    ASCII host name (IDNA-encode international names) or an IP literal.
    """
    if len(url) > MAX_URL:
        raise ValueError(f"url must be at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("url must not contain whitespace or control characters")
    if not is_encodable(url):
        raise ValueError("url must be valid Unicode (no lone surrogates)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"url is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError("url must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("url must not contain user info (user:password@)")
    if parts.fragment or url.endswith("#"):
        raise ValueError("url must not contain a fragment (#…)")
    host = parts.hostname
    if not host:
        raise ValueError("url must name a host")
    if port == 0:
        raise ValueError("url port must be between 1 and 65535")
    if ":" not in host and not _hostname_ok(host):
        raise ValueError(
            "url host must be an ASCII host name (IDNA-encode international names) or an IP address"
        )
    return parts


def target(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a valid webhook URL (the port filled in)."""
    parts = split_url(url)
    host = parts.hostname or ""
    return parts.scheme, host, parts.port or (443 if parts.scheme == "https" else 80)


def _url(value: str) -> str:
    split_url(value)
    return value


def _events(value: list[str]) -> list[str]:
    unknown = [e for e in value if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    if not value:
        raise ValueError("events must name at least one event type")
    return sorted(set(value))


def _description(value: str) -> str:
    if "\x00" in value:
        raise ValueError("description must not contain NUL characters")
    if not is_encodable(value):
        raise ValueError("description must be valid Unicode (no lone surrogates)")
    return value


class WebhookCreate(Strict):
    url: str = Field(min_length=1, max_length=MAX_URL)
    events: list[str] = Field(default_factory=lambda: sorted(DEFAULT_EVENTS), max_length=16)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    enabled: bool = True

    _u = field_validator("url")(_url)
    _e = field_validator("events")(_events)
    _d = field_validator("description")(_description)


class WebhookPatch(Strict):
    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL)
    events: list[str] | None = Field(default=None, max_length=16)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @field_validator("events")
    @classmethod
    def _check_events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _events(value)

    @field_validator("description")
    @classmethod
    def _check_description(cls, value: str | None) -> str | None:
        return None if value is None else _description(value)
