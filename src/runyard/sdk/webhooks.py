"""SDK methods for a workspace's webhooks, mixed into both clients, and the
receiver-side signature check.

Written like :class:`~runyard.sdk.schedules.ScheduleOperations`: each method
builds a plan over the control-plane path ``/v1/workspaces/{ws}/webhooks``
and hands it to ``_drive``. A receiver verifies a delivery with
:func:`verify_signature` (the raw request body, the ``Runyard-Signature``
header and the secret shown at creation).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar
from urllib.parse import quote

from runyard.domain.webhooks import verify as verify_signature
from runyard.sdk.core import Plan, RequestSpec, one

R = TypeVar("R")

__all__ = ["WebhookOperations", "verify_signature"]


class WebhookOperations(Generic[R]):
    """Webhook methods; the client classes supply ``_drive`` and ``workspace``."""

    workspace: str

    def _drive(self, plan: Plan) -> R:
        raise NotImplementedError

    def _webhooks_path(self, webhook_id: str | None = None, action: str | None = None) -> str:
        path = f"/v1/workspaces/{quote(self.workspace, safe='')}/webhooks"
        if webhook_id is not None:
            path += "/" + quote(webhook_id, safe="")
        if action is not None:
            path += "/" + action
        return path

    def list_webhooks(self) -> R:
        """``{webhooks: [...]}`` of the workspace."""
        return self._drive(one(RequestSpec("GET", self._webhooks_path())))

    def create_webhook(
        self,
        url: str,
        *,
        events: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> R:
        """Create a webhook: ``{webhook, secret}``; the secret is shown only now."""
        body = {
            k: v
            for k, v in {
                "url": url,
                "events": events,
                "description": description,
                "enabled": enabled,
            }.items()
            if v is not None
        }
        return self._drive(one(RequestSpec("POST", self._webhooks_path(), body=body)))

    def get_webhook(self, webhook_id: str) -> R:
        return self._drive(one(RequestSpec("GET", self._webhooks_path(webhook_id))))

    def update_webhook(self, webhook_id: str, **changes: Any) -> R:
        """PATCH the webhook: ``url``, ``events``, ``description``, ``enabled``."""
        spec = RequestSpec("PATCH", self._webhooks_path(webhook_id), body=changes)
        return self._drive(one(spec))

    def delete_webhook(self, webhook_id: str) -> R:
        """Delete the webhook and its deliveries: ``{deleted: true, id}``."""
        return self._drive(self._delete(webhook_id))

    def _delete(self, webhook_id: str) -> Plan:
        yield RequestSpec("DELETE", self._webhooks_path(webhook_id))  # 204 No Content
        return {"deleted": True, "id": webhook_id}

    def rotate_webhook_secret(self, webhook_id: str) -> R:
        """A new signing secret: ``{webhook, secret}``; the secret is shown only now."""
        spec = RequestSpec("POST", self._webhooks_path(webhook_id, "rotate-secret"))
        return self._drive(one(spec))

    def list_webhook_deliveries(
        self, webhook_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> R:
        """``{deliveries, hasMore, nextCursor}``, newest first."""
        spec = RequestSpec(
            "GET",
            self._webhooks_path(webhook_id, "deliveries"),
            {"limit": limit, "cursor": cursor},
        )
        return self._drive(one(spec))
