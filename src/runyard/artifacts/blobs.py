"""The artifact store: contents kept by their SHA-256 in a local directory.

Content addressing makes writes idempotent (a retried or re-collected file
lands on the same name) and shares identical files between runs. A blob is
written to a temporary file and renamed into place, so a reader never sees a
partial blob. ``runyard serve`` and ``runyard worker`` must see the same
directory (``RUNYARD_ARTIFACT_DIR``): the worker writes, the API reads.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{64}")


class TooLarge(Exception):
    """The content is over the byte limit it was copied under."""


class ArtifactBlobs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not _HEX.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_fd(self, fd: int, limit: int) -> tuple[str, int]:
        """Copy the open file ``fd`` (read from its current offset); returns its
        sha256 and size. :class:`TooLarge` when it holds more than ``limit`` bytes."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256()
        size = 0
        tmp_fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(tmp_fd, "wb") as out:
                while chunk := os.read(fd, CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"more than {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path(sha)
            final.parent.mkdir(exist_ok=True, mode=0o700)
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return sha, size
