"""Schedules surface: ``/v1/workspaces/{ws}/agents/{slug}/schedules[/{scheduleId}]``.

Workspace or personal keys only, like the rest of the control plane. A
schedule document carries the operator's own prompt (this is the control
plane, not run history) and ``history: {lastRan, nextRun}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from runyard.api.deps import ControlDep, ServicesDep
from runyard.domain.schedules import Schedule, ScheduleCreate, SchedulePatch
from runyard.types import iso_millis

router = APIRouter(prefix="/v1/workspaces/{ws}/agents/{slug}/schedules", tags=["control plane"])

IdArg = Annotated[str, Path(alias="scheduleId", max_length=100)]


def schedule_doc(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "agentId": s.agent_id,
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "prompt": s.prompt,
        "enabled": s.enabled,
        "paused": s.paused,
        "harness": s.harness,
        "timeoutSeconds": s.timeout_seconds,
        "history": {"lastRan": iso_millis(s.last_ran_at), "nextRun": iso_millis(s.next_run_at)},
        "lastRunId": s.last_run_id,
        "lastSpawnError": s.last_spawn_error,
        "createdAt": iso_millis(s.created_at),
        "updatedAt": iso_millis(s.updated_at),
    }


@router.get("")
def list_schedules(svc: ServicesDep, caller: ControlDep, slug: str) -> dict[str, Any]:
    found = svc.schedules.list_all(caller.workspace.id, slug)
    return {"schedules": [schedule_doc(s) for s in found]}


@router.post("", status_code=201)
def create_schedule(
    svc: ServicesDep, caller: ControlDep, slug: str, body: ScheduleCreate
) -> dict[str, Any]:
    return schedule_doc(svc.schedules.create(caller.workspace.id, slug, body))


@router.get("/{scheduleId}")
def get_schedule(
    svc: ServicesDep, caller: ControlDep, slug: str, schedule_id: IdArg
) -> dict[str, Any]:
    return schedule_doc(svc.schedules.get(caller.workspace.id, slug, schedule_id))


@router.patch("/{scheduleId}")
def update_schedule(
    svc: ServicesDep, caller: ControlDep, slug: str, schedule_id: IdArg, body: SchedulePatch
) -> dict[str, Any]:
    return schedule_doc(svc.schedules.update(caller.workspace.id, slug, schedule_id, body))


@router.delete("/{scheduleId}")
def delete_schedule(
    svc: ServicesDep, caller: ControlDep, slug: str, schedule_id: IdArg
) -> dict[str, Any]:
    svc.schedules.delete(caller.workspace.id, slug, schedule_id)
    return {"deleted": True, "schedule": {"id": schedule_id}}


@router.post("/{scheduleId}/pause")
def pause_schedule(
    svc: ServicesDep, caller: ControlDep, slug: str, schedule_id: IdArg
) -> dict[str, Any]:
    return schedule_doc(svc.schedules.set_paused(caller.workspace.id, slug, schedule_id, True))


@router.post("/{scheduleId}/resume")
def resume_schedule(
    svc: ServicesDep, caller: ControlDep, slug: str, schedule_id: IdArg
) -> dict[str, Any]:
    return schedule_doc(svc.schedules.set_paused(caller.workspace.id, slug, schedule_id, False))
