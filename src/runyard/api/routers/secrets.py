"""Secrets surface: ``/v1/workspaces/{ws}/secrets[/{name}]``.

Values are submitted once and never returned: every answer is masked
metadata. Workspace or personal keys only, like the rest of the control plane.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from runyard.api.deps import ControlDep, ServicesDep
from runyard.domain.entities import Secret
from runyard.domain.requests import SecretPut
from runyard.services.secrets import NAME_PATTERN
from runyard.types import iso_millis

router = APIRouter(prefix="/v1/workspaces/{ws}/secrets", tags=["control plane"])

NameArg = Annotated[str, Path(pattern=NAME_PATTERN)]


def secret_doc(secret: Secret) -> dict[str, Any]:
    return {
        "id": secret.id,
        "name": secret.name,
        "projectionName": secret.projection_name,
        "agentIds": secret.agent_ids,
        "value": "********",
        "valueLength": secret.value_length,
        "createdAt": iso_millis(secret.created_at),
        "updatedAt": iso_millis(secret.updated_at),
    }


@router.get("")
def list_secrets(svc: ServicesDep, caller: ControlDep) -> dict[str, Any]:
    return {"secrets": [secret_doc(s) for s in svc.secrets.list(caller.workspace.id)]}


@router.put("/{name}")
def put_secret(
    svc: ServicesDep, caller: ControlDep, name: NameArg, body: SecretPut, response: Response
) -> dict[str, Any]:
    saved, created = svc.secrets.put(caller.workspace.id, name, body)
    response.status_code = 201 if created else 200
    return {"secret": secret_doc(saved)}


@router.get("/{name}")
def get_secret(svc: ServicesDep, caller: ControlDep, name: NameArg) -> dict[str, Any]:
    return {"secret": secret_doc(svc.secrets.get(caller.workspace.id, name))}


@router.delete("/{name}")
def delete_secret(svc: ServicesDep, caller: ControlDep, name: NameArg) -> dict[str, Any]:
    svc.secrets.delete(caller.workspace.id, name)
    return {"deleted": True, "name": name}
