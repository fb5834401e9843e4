"""Capabilities surface: ``/v1/workspaces/{ws}/agents/{slug}/capabilities[/{id}]``.

Workspace or personal keys only, like the rest of the control plane. Every
answer, list included, is ``{stateVersion, capabilities, missingSecrets}``;
each capability carries its declared fields and the worker's evidence.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from runyard.api.deps import ControlDep, ServicesDep
from runyard.domain.capabilities import Capability, CapabilityBody
from runyard.services.capabilities import CapabilityState
from runyard.types import iso_millis

router = APIRouter(prefix="/v1/workspaces/{ws}/agents/{slug}/capabilities", tags=["control plane"])

IdArg = Annotated[str, Path(alias="capabilityId", max_length=100)]


def capability_doc(cap: Capability) -> dict[str, Any]:
    return {
        "id": cap.id,
        **cap.wire(),
        "evidence": {
            "status": cap.evidence_status,
            "error": cap.evidence_error,
            "updatedAt": iso_millis(cap.evidence_updated_at),
        },
        "createdAt": iso_millis(cap.created_at),
        "updatedAt": iso_millis(cap.updated_at),
    }


def state_doc(state: CapabilityState) -> dict[str, Any]:
    return {
        "stateVersion": state.version,
        "capabilities": [capability_doc(c) for c in state.capabilities],
        "missingSecrets": state.missing_secrets,
    }


@router.get("")
def list_capabilities(svc: ServicesDep, caller: ControlDep, slug: str) -> dict[str, Any]:
    return state_doc(svc.capabilities.state(caller.workspace.id, slug))


@router.post("", status_code=201)
def add_capability(
    svc: ServicesDep, caller: ControlDep, slug: str, body: CapabilityBody
) -> dict[str, Any]:
    return state_doc(svc.capabilities.create(caller.workspace.id, slug, body.capability))


@router.patch("/{capabilityId}")
def update_capability(
    svc: ServicesDep, caller: ControlDep, slug: str, capability_id: IdArg, body: CapabilityBody
) -> dict[str, Any]:
    return state_doc(
        svc.capabilities.update(caller.workspace.id, slug, capability_id, body.capability)
    )


@router.delete("/{capabilityId}")
def remove_capability(
    svc: ServicesDep, caller: ControlDep, slug: str, capability_id: IdArg
) -> dict[str, Any]:
    return state_doc(svc.capabilities.delete(caller.workspace.id, slug, capability_id))
