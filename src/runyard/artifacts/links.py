"""Expiring download links for artifacts, authenticated by an HMAC signature.

A link names one artifact and an expiry time and carries
``HMAC-SHA256(key, "{artifact_id}.{expires}")``: whoever holds the link may
download that artifact until it expires, without an API key (so a browser or
``curl`` can follow it), and nobody can forge one for another artifact or a
later time. The key is derived from runyard's secret key, so every API server
of a deployment verifies the links any of them issued.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from runyard.errors import Forbidden

_SIG = re.compile(r"[0-9a-f]{64}")
_EXPIRES = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Link:
    path: str
    expires_at: int  # unix seconds


class ArtifactLinks:
    def __init__(self, secret_key: bytes, lifetime_seconds: int) -> None:
        self._key = hmac.new(secret_key, b"runyard artifact download links", "sha256").digest()
        self.lifetime = lifetime_seconds

    def _sign(self, artifact_id: str, expires: int) -> str:
        message = f"{artifact_id}.{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, artifact_id: str, now_seconds: int) -> Link:
        expires = now_seconds + self.lifetime
        query = urlencode({"expires": expires, "signature": self._sign(artifact_id, expires)})
        return Link(path=f"/v1/artifacts/{artifact_id}/download?{query}", expires_at=expires)

    def verify(self, artifact_id: str, expires: str, signature: str, now_seconds: int) -> None:
        """Raise :class:`Forbidden` unless the link is genuine and unexpired."""
        if not _EXPIRES.fullmatch(expires) or not _SIG.fullmatch(signature):
            raise Forbidden("the download link is malformed", {"reason": "invalid_link"})
        if not hmac.compare_digest(self._sign(artifact_id, int(expires)), signature):
            raise Forbidden("the download link is not valid", {"reason": "invalid_link"})
        if int(expires) < now_seconds:
            raise Forbidden("the download link has expired", {"reason": "link_expired"})
