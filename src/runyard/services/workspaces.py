"""Workspaces: created by operators (``runyard admin``, ``runyard up``), not by the API."""

from __future__ import annotations

from runyard.domain.entities import KeyKind, Workspace
from runyard.domain.naming import is_slug
from runyard.errors import BadRequest, NotFound
from runyard.services.keys import KeyService
from runyard.store.base import Store
from runyard.types import new_id, now_millis


class WorkspaceService:
    def __init__(self, store: Store, keys: KeyService) -> None:
        self._store = store
        self._keys = keys

    def create(self, slug: str) -> tuple[Workspace, str]:
        """Create a workspace and its first workspace key; returns the key secret."""
        if not is_slug(slug):
            raise BadRequest(
                "workspace slug must be 1-63 lower-case letters, digits or '-',"
                " starting and ending with a letter or digit"
            )
        workspace = Workspace(id=new_id("ws"), slug=slug, created_at=now_millis())
        self._store.create_workspace(workspace)
        _, secret = self._keys.issue(workspace.id, KeyKind.WORKSPACE, name="initial")
        return workspace, secret

    def get(self, slug: str) -> Workspace:
        workspace = self._store.get_workspace(slug=slug)
        if workspace is None:
            raise NotFound(f"workspace {slug!r} not found")
        return workspace

    def find(self, slug: str) -> Workspace | None:
        return self._store.get_workspace(slug=slug)
