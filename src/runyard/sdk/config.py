"""Where a client finds its connection: explicit values, the environment, credentials.json.

``runyard up`` writes ``DATA_DIR/credentials.json`` (``baseUrl``,
``workspace``, ``workspaceKey``, mode 0600) on first start, so on the same
machine the CLI and SDK work with no flags. Each field is resolved on its
own, first match wins:

1. the explicit argument (``--base-url``, ``--api-key``, ``--workspace``);
2. ``RUNYARD_BASE_URL`` / ``RUNYARD_API_KEY`` / ``RUNYARD_WORKSPACE``;
3. the credentials file in ``--data-dir``, else ``RUNYARD_DATA_DIR``, else
   ``./.runyard``;
4. defaults: ``http://127.0.0.1:8750`` and workspace ``default`` (there is
   no default key: a missing key is a :class:`~runyard.errors.ConfigError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runyard.errors import ConfigError

CREDENTIALS_FILE = "credentials.json"
DEFAULT_DATA_DIR = ".runyard"
DEFAULT_BASE_URL = "http://127.0.0.1:8750"
DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class Credentials:
    """The contents of a ``credentials.json`` written by ``runyard up``."""

    base_url: str
    workspace: str
    api_key: str
    path: Path


@dataclass(frozen=True)
class Connection:
    """Everything a client needs to talk to one runyard workspace."""

    base_url: str
    api_key: str
    workspace: str

    def __repr__(self) -> str:  # never show the key
        return f"Connection(base_url={self.base_url!r}, workspace={self.workspace!r})"


def load_credentials(data_dir: str | os.PathLike[str]) -> Credentials | None:
    """Read ``DATA_DIR/credentials.json``; ``None`` if there is no such file.

    A file that exists but cannot be read or lacks a field is a
    :class:`~runyard.errors.ConfigError` naming the file.
    """
    path = Path(data_dir) / CREDENTIALS_FILE
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    values = {}
    for name in ("baseUrl", "workspace", "workspaceKey"):
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path} has no {name!r} string")
        values[name] = value
    return Credentials(
        base_url=values["baseUrl"],
        workspace=values["workspace"],
        api_key=values["workspaceKey"],
        path=path,
    )


def resolve_connection(
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    workspace: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Connection:
    """Resolve each connection field as the module docstring describes."""
    env = os.environ if env is None else env
    base_url = base_url or env.get("RUNYARD_BASE_URL") or None
    api_key = api_key or env.get("RUNYARD_API_KEY") or None
    workspace = workspace or env.get("RUNYARD_WORKSPACE") or None
    where = Path(data_dir or env.get("RUNYARD_DATA_DIR") or DEFAULT_DATA_DIR)
    creds = None
    if base_url is None or api_key is None or workspace is None:
        creds = load_credentials(where)
    if api_key is None:
        if creds is None:
            raise ConfigError(
                "no API key: pass --api-key, set RUNYARD_API_KEY, or point --data-dir at the"
                f" data directory of `runyard up` (looked for {where / CREDENTIALS_FILE})"
            )
        api_key = creds.api_key
    return Connection(
        base_url=base_url or (creds.base_url if creds else DEFAULT_BASE_URL),
        api_key=api_key,
        workspace=workspace or (creds.workspace if creds else DEFAULT_WORKSPACE),
    )
