"""Webhooks surface: ``/v1/workspaces/{ws}/webhooks[/{webhookId}[/rotate-secret|/deliveries]]``.

Workspace or personal keys only, like the rest of the control plane. The
signing secret appears in two answers only: creation and ``rotate-secret``.
A delivery document carries the event exactly as it is (or was) POSTed,
which holds no prompt, output or secret value.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from runyard.api.deps import ControlDep, ServicesDep
from runyard.domain.webhooks import Delivery, Webhook, WebhookCreate, WebhookPatch, payload
from runyard.types import iso_millis

router = APIRouter(prefix="/v1/workspaces/{ws}/webhooks", tags=["control plane"])

IdArg = Annotated[str, Path(alias="webhookId", max_length=100)]


def webhook_doc(w: Webhook) -> dict[str, Any]:
    return {
        "id": w.id,
        "url": w.url,
        "events": w.events,
        "description": w.description,
        "enabled": w.enabled,
        "createdAt": iso_millis(w.created_at),
        "updatedAt": iso_millis(w.updated_at),
    }


def delivery_doc(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhookId": d.webhook_id,
        "runId": d.run.id,
        "type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "nextAttemptAt": iso_millis(d.next_attempt_at),
        "responseStatus": d.response_status,
        "lastError": d.last_error,
        "createdAt": iso_millis(d.created_at),
        "deliveredAt": iso_millis(d.delivered_at),
        "payload": payload(d),
    }


@router.get("")
def list_webhooks(svc: ServicesDep, caller: ControlDep) -> dict[str, Any]:
    return {"webhooks": [webhook_doc(w) for w in svc.webhooks.list(caller.workspace.id)]}


@router.post("", status_code=201)
def create_webhook(svc: ServicesDep, caller: ControlDep, body: WebhookCreate) -> dict[str, Any]:
    made, secret = svc.webhooks.create(caller.workspace.id, body)
    return {"webhook": webhook_doc(made), "secret": secret}


@router.get("/{webhookId}")
def get_webhook(svc: ServicesDep, caller: ControlDep, webhook_id: IdArg) -> dict[str, Any]:
    return {"webhook": webhook_doc(svc.webhooks.get(caller.workspace.id, webhook_id))}


@router.patch("/{webhookId}")
def update_webhook(
    svc: ServicesDep, caller: ControlDep, webhook_id: IdArg, body: WebhookPatch
) -> dict[str, Any]:
    return {"webhook": webhook_doc(svc.webhooks.update(caller.workspace.id, webhook_id, body))}


@router.delete("/{webhookId}", status_code=204)
def delete_webhook(svc: ServicesDep, caller: ControlDep, webhook_id: IdArg) -> Response:
    svc.webhooks.delete(caller.workspace.id, webhook_id)
    return Response(status_code=204)


@router.post("/{webhookId}/rotate-secret")
def rotate_secret(svc: ServicesDep, caller: ControlDep, webhook_id: IdArg) -> dict[str, Any]:
    saved, secret = svc.webhooks.rotate_secret(caller.workspace.id, webhook_id)
    return {"webhook": webhook_doc(saved), "secret": secret}


@router.get("/{webhookId}/deliveries")
def list_deliveries(
    svc: ServicesDep,
    caller: ControlDep,
    webhook_id: IdArg,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = svc.webhooks.deliveries(caller.workspace.id, webhook_id, limit, cursor)
    return {
        "deliveries": [delivery_doc(d) for d in page.deliveries],
        "hasMore": page.next_cursor is not None,
        "nextCursor": page.next_cursor,
    }
