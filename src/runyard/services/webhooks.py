"""Webhooks of a workspace: create, list, read, update, delete, rotate the secret,
and list a webhook's deliveries.

Every call is scoped by the caller's workspace; another workspace's webhook
is a 404. A webhook's target is checked when it is created and whenever its
URL changes: an IP literal, or every address its host name resolves to, must
be publicly routable, unless the operator allowed private targets
(``RUNYARD_WEBHOOK_ALLOW_PRIVATE``); link-local, multicast, unspecified and
cloud metadata addresses are refused even then (the policy of the sandbox
egress proxy). A refusal is a ``400 BAD_REQUEST`` with a stable
``data.reason``. The dispatcher checks again at send time, since DNS answers
change.

The signing secret (``whsec_`` + 32 random bytes, URL-safe base64) is shown
once, at creation and on rotation, and sealed at rest with the SecretBox.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runyard.domain.webhooks import (
    MAX_PER_WORKSPACE,
    SECRET_PREFIX,
    Delivery,
    Webhook,
    WebhookCreate,
    WebhookPatch,
    target,
)
from runyard.errors import BadRequest, Conflict, NotFound
from runyard.sandbox.egress import address_allowed, is_ip
from runyard.secrets_box import SecretBox
from runyard.services import cursors
from runyard.store.base import Store
from runyard.types import new_id, now_millis

REASON_PRIVATE = "webhook_target_private"
REASON_UNRESOLVABLE = "webhook_target_unresolvable"
_NOT_NULL = ("url", "events", "description", "enabled")
_CURSOR_TAG = "d1"

Resolver = Callable[[str, int], list[str]]


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (``OSError`` when it does not resolve)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_context(workspace_id: str, webhook_id: str) -> str:
    """Associated data sealing a webhook's secret (no secret name contains ``/``)."""
    return f"{workspace_id}/webhooks/{webhook_id}"


def refused_addresses(addresses: list[str], allow_private: bool) -> list[str]:
    """The addresses of ``addresses`` a webhook may not be sent to."""
    return [a for a in addresses if not address_allowed(a, allow_private)]


def encode_cursor(seq: int) -> str:
    return cursors.encode_seq(_CURSOR_TAG, seq)


def decode_cursor(cursor: str) -> int:
    return cursors.decode_seq(cursor, _CURSOR_TAG)


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[Delivery]
    next_cursor: str | None


class WebhookService:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        allow_private: bool = False,
        resolve: Resolver = system_resolve,
    ) -> None:
        self._store = store
        self._box = box
        self._allow_private = allow_private
        self._resolve = resolve

    def check_target(self, url: str) -> None:
        """Refuse a URL whose host is, or resolves to, an address webhooks may not reach."""
        _, host, port = target(url)
        if is_ip(host):
            addresses = [host]
        else:
            try:
                addresses = self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise BadRequest(
                    f"the webhook host {host!r} does not resolve",
                    {"field": "url", "reason": REASON_UNRESOLVABLE},
                ) from exc
            if not addresses:
                raise BadRequest(
                    f"the webhook host {host!r} does not resolve",
                    {"field": "url", "reason": REASON_UNRESOLVABLE},
                )
        refused = refused_addresses(addresses, self._allow_private)
        if refused:
            raise BadRequest(
                f"the webhook host {host!r} is or resolves to {refused[0]}, an address"
                " webhooks may not be sent to (loopback, private, link-local, multicast,"
                " reserved or unspecified); the operator may allow private targets with"
                " RUNYARD_WEBHOOK_ALLOW_PRIVATE",
                {"field": "url", "reason": REASON_PRIVATE},
            )

    def _get(self, workspace_id: str, webhook_id: str) -> Webhook:
        found = self._store.get_webhook(workspace_id, webhook_id)
        if found is None:
            raise NotFound(f"webhook {webhook_id!r} not found")
        return found

    def create(self, workspace_id: str, body: WebhookCreate) -> tuple[Webhook, str]:
        """Create a webhook; returns it and its signing secret (shown only now)."""
        if self._store.count_webhooks(workspace_id) >= MAX_PER_WORKSPACE:
            raise Conflict(f"a workspace may have at most {MAX_PER_WORKSPACE} webhooks")
        self.check_target(body.url)
        now = now_millis()
        webhook_id = new_id("wh")
        secret = new_secret()
        made = Webhook(
            id=webhook_id,
            workspace_id=workspace_id,
            url=body.url,
            events=body.events,
            description=body.description,
            enabled=body.enabled,
            secret_ciphertext=self._box.seal(secret, secret_context(workspace_id, webhook_id)),
            created_at=now,
            updated_at=now,
        )
        self._store.insert_webhook(made)
        return made, secret

    def list(self, workspace_id: str) -> list[Webhook]:
        return self._store.list_webhooks(workspace_id)

    def get(self, workspace_id: str, webhook_id: str) -> Webhook:
        return self._get(workspace_id, webhook_id)

    def update(self, workspace_id: str, webhook_id: str, body: WebhookPatch) -> Webhook:
        current = self._get(workspace_id, webhook_id)
        changes = body.changes(_NOT_NULL)
        if not changes:
            return current
        if "url" in changes and changes["url"] != current.url:
            self.check_target(changes["url"])
        return self._save(workspace_id, webhook_id, changes)

    def rotate_secret(self, workspace_id: str, webhook_id: str) -> tuple[Webhook, str]:
        """A new signing secret (shown only now); deliveries from now on use it."""
        self._get(workspace_id, webhook_id)
        secret = new_secret()
        sealed = self._box.seal(secret, secret_context(workspace_id, webhook_id))
        return self._save(workspace_id, webhook_id, {"secret_ciphertext": sealed}), secret

    def delete(self, workspace_id: str, webhook_id: str) -> None:
        if not self._store.delete_webhook(workspace_id, webhook_id):
            raise NotFound(f"webhook {webhook_id!r} not found")

    def deliveries(
        self, workspace_id: str, webhook_id: str, limit: int, cursor: str | None
    ) -> DeliveryPage:
        """The webhook's deliveries, newest first, ``limit`` at a time."""
        before = decode_cursor(cursor) if cursor else None
        self._get(workspace_id, webhook_id)
        found = self._store.list_deliveries(workspace_id, webhook_id, limit + 1, before)
        page = found[:limit]
        more = len(found) > limit
        return DeliveryPage(page, encode_cursor(page[-1].seq) if more else None)

    def _save(self, workspace_id: str, webhook_id: str, changes: dict[str, Any]) -> Webhook:
        saved = self._store.update_webhook(workspace_id, webhook_id, changes, now_millis())
        if saved is None:
            raise NotFound(f"webhook {webhook_id!r} not found")
        return saved

    def open_secret(self, workspace_id: str, webhook_id: str, ciphertext: str) -> str:
        """The signing secret of a webhook (dispatcher side only)."""
        return self._box.open(ciphertext, secret_context(workspace_id, webhook_id))
