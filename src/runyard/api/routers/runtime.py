"""Runtime surface: ``/v1/agents/{agentId}/status|exec|runs`` for one agent.

``/exec`` queues the run durably, then holds the request for a bounded time
(the run's ``timeoutSeconds`` plus a grace for queueing) and answers with the
output, or with the error envelope carrying ``data.runId``:

* ``failed`` -> 502 ``RUN_FAILED``; ``timed_out`` -> 504 ``RUN_TIMED_OUT``;
  ``cancelled`` -> 409 ``RUN_CANCELLED``;
* still queued or running when the wait ends -> 504 ``RUN_PENDING`` (the run
  goes on; poll ``GET …/runs/{runId}``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from runyard.api.deps import RuntimeAgentDep, ServicesDep, SourceDep
from runyard.api.render import run_doc, status_doc
from runyard.domain.entities import Run
from runyard.domain.requests import ExecRequest
from runyard.errors import RunCancelled, RunFailed, RunStillRunning, RunTimedOut, RunyardError

router = APIRouter(prefix="/v1/agents/{agentId}", tags=["runtime"])

_BY_STATUS: dict[str, type[RunyardError]] = {
    "failed": RunFailed,
    "timed_out": RunTimedOut,
    "cancelled": RunCancelled,
}


@router.get("/status")
def agent_status(agent: RuntimeAgentDep) -> dict[str, Any]:
    return status_doc(agent)


def exec_result(run: Run) -> dict[str, Any]:
    """The ``/exec`` answer for a finished run, or raise its error envelope."""
    if run.status in ("completed", "partial"):
        return {
            "output": {"text": run.output or ""},
            "runId": run.id,
            "harness": run.harness_resolved,
            "sessionId": run.session_id,
            "warnings": run.warnings,
        }
    data: dict[str, Any] = {"runId": run.id, "runStatus": run.status}
    error_cls = _BY_STATUS.get(run.status)
    if error_cls is None:
        raise RunStillRunning(
            "the run has not finished within the wait; poll its run resource", data
        )
    data["runError"] = {"code": run.error.code, "message": run.error.message}
    if run.error.retryable is not None:
        data["retryable"] = run.error.retryable
    raise error_cls(run.error.message or f"the run ended {run.status}", data)


@router.post("/exec")
async def exec_prompt(
    svc: ServicesDep, agent: RuntimeAgentDep, body: ExecRequest, source: SourceDep
) -> dict[str, Any]:
    budget = body.timeout_seconds or svc.settings.default_timeout_seconds
    agent = await svc.admission.admit(agent, budget)
    run = await run_in_threadpool(svc.runs.submit, agent, body, source)
    wait = run.timeout_seconds + svc.settings.sync_wait_grace_seconds
    return exec_result(await svc.runs.wait(run, wait))


@router.get("/runs")
def list_runs(
    svc: ServicesDep,
    agent: RuntimeAgentDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = svc.runs.page(agent.workspace_id, agent.id, limit, cursor)
    return {
        "runs": [run_doc(r) for r in page.runs],
        "hasMore": page.next_cursor is not None,
        "nextCursor": page.next_cursor,
    }


@router.get("/runs/{runId}")
def get_run(
    svc: ServicesDep,
    agent: RuntimeAgentDep,
    run_id: Annotated[str, Path(alias="runId", max_length=100)],
) -> dict[str, Any]:
    return {"run": run_doc(svc.runs.get(agent.workspace_id, agent.id, run_id))}
