"""Encryption of secret values at rest (AES-256-GCM).

The key is 32 random bytes from ``RUNYARD_SECRET_KEY`` (base64), or else from
``<data dir>/secret.key``, created with mode 0600 on first use. Each value is
sealed with a fresh nonce and the secret's workspace and name as associated
data, so a ciphertext copied onto another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runyard.errors import ConfigError, Internal

KEY_BYTES = 32
NONCE_BYTES = 12


def load_key(env_value: str | None, data_dir: Path) -> bytes:
    if env_value:
        try:
            key = base64.b64decode(env_value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("RUNYARD_SECRET_KEY must be base64") from exc
        if len(key) != KEY_BYTES:
            raise ConfigError("RUNYARD_SECRET_KEY must decode to 32 bytes")
        return key
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(base64.b64encode(os.urandom(KEY_BYTES)))
    key = base64.b64decode(path.read_bytes().strip())
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{path} does not hold a 32-byte base64 key")
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, token: str, context: str) -> str:
        raw = base64.b64decode(token)
        try:
            return self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()
            ).decode()
        except InvalidTag as exc:
            raise Internal("a stored secret cannot be decrypted with this runyard's key") from exc
