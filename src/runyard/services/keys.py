"""API keys: issue, authenticate, list and revoke.

A key is ``sk_<kind>_<40 base62 chars>``; only its SHA-256 is stored and the
secret is shown once. Authentication finds the key by hash and compares the
hashes in constant time. ``last_used_at`` is written at most once a minute
per key so that authentication stays a read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from runyard.domain.entities import ApiKey, KeyKind
from runyard.errors import BadRequest, NotFound, Unauthorized
from runyard.store.base import Store
from runyard.types import new_id, now_millis

_ALPHABET = string.ascii_letters + string.digits
_SECRET_LEN = 40
_TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's workspace, kind and (for runtime keys) agent."""

    workspace_id: str
    kind: KeyKind
    key_id: str
    agent_id: str | None = None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(kind: KeyKind) -> str:
    return f"sk_{kind.value}_" + "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LEN))


class KeyService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def issue(
        self, workspace_id: str, kind: KeyKind, name: str = "", agent_id: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns the record and the secret (shown once)."""
        if (kind is KeyKind.AGENT) != (agent_id is not None):
            raise BadRequest("agent keys need an agent, other keys must not name one")
        if len(name) > 200:
            raise BadRequest("key name is longer than 200 characters")
        secret = _new_secret(kind)
        key = ApiKey(
            id=new_id("key"),
            workspace_id=workspace_id,
            kind=kind,
            name=name,
            prefix=secret[: len(f"sk_{kind.value}_") + 4],
            secret_hash=hash_secret(secret),
            created_at=now_millis(),
            agent_id=agent_id,
        )
        self._store.insert_key(key)
        return key, secret

    def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthorized("missing API key: send 'Authorization: Bearer sk_…' or 'X-API-KEY'")
        if not secret.startswith("sk_") or len(secret) > 200:
            raise Unauthorized("invalid API key")
        digest = hash_secret(secret)
        key = self._store.find_key(digest)
        if key is None or not hmac.compare_digest(key.secret_hash, digest):
            raise Unauthorized("invalid API key")
        now = now_millis()
        if key.last_used_at is None or now - key.last_used_at > _TOUCH_EVERY_MS:
            self._store.touch_key(key.id, now)
        return Principal(
            workspace_id=key.workspace_id, kind=key.kind, key_id=key.id, agent_id=key.agent_id
        )

    def list(self, workspace_id: str, agent_id: str | None) -> list[ApiKey]:
        return self._store.list_keys(workspace_id, agent_id)

    def revoke(self, workspace_id: str, key_id: str, agent_id: str | None) -> ApiKey:
        key = self._store.revoke_key(workspace_id, key_id, agent_id, now_millis())
        if key is None:
            raise NotFound(f"key {key_id!r} not found")
        return key
