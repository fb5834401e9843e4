"""The Store protocol: everything services and workers may ask of storage.

Rules every implementation keeps (checked by the contract suite in
``tests/integration``): reads and writes of client objects are scoped by
workspace inside the query; run status changes are conditional updates that
name the allowed source states and, for workers, the lease token; a method
returns only after its write is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runyard.domain.canvas import Artifact, Step
from runyard.domain.capabilities import Capability
from runyard.domain.entities import Agent, ApiKey, Run, RunEvent, RunOutcome, Secret, Workspace
from runyard.domain.schedules import Schedule
from runyard.domain.webhooks import ClaimedDelivery, Delivery, Webhook
from runyard.store.events import CancelResult, IdempotentSubmit
from runyard.store.events_queries import RunFilter
from runyard.store.run_queries import ListedRun, RunQuery


@dataclass(frozen=True)
class LeaseState:
    """Answer to a heartbeat: whether the lease is still ours, and cancel requests."""

    held: bool
    cancel_requested: bool = False


@dataclass(frozen=True)
class ReapResult:
    """Run ids the reaper put back in the queue, failed, or cancelled (cancel requested)."""

    requeued: list[str]
    failed: list[str]
    cancelled: list[str] = field(default_factory=list)


class Store(Protocol):
    """Storage used by services (client-scoped) and workers (lease-scoped)."""

    backend: str

    def migrate(self) -> None: ...
    def close(self) -> None: ...
    def subscribe(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(event, run_id)`` after commits that queue or finish runs
        (``"queued"``, ``"finished"``) or append to a run's event log (``"event"``)."""
        ...

    # workspaces and keys
    def create_workspace(self, workspace: Workspace) -> None: ...
    def get_workspace(
        self, *, slug: str | None = None, id: str | None = None
    ) -> Workspace | None: ...
    def insert_key(self, key: ApiKey) -> None: ...
    def find_key(self, secret_hash: str) -> ApiKey | None: ...
    def list_keys(self, workspace_id: str, agent_id: str | None) -> list[ApiKey]: ...
    def revoke_key(
        self, workspace_id: str, key_id: str, agent_id: str | None, now: int
    ) -> ApiKey | None: ...
    def touch_key(self, key_id: str, now: int) -> None: ...

    # agents and their environment
    def insert_agent(self, agent: Agent) -> None: ...
    def get_agent(
        self, workspace_id: str, *, slug: str | None = None, agent_id: str | None = None
    ) -> Agent | None: ...
    def list_agents(self, workspace_id: str, limit: int, before_id: str | None) -> list[Agent]: ...
    def update_agent(
        self, workspace_id: str, agent_id: str, changes: dict[str, Any], now: int
    ) -> Agent | None: ...
    def delete_agent(self, workspace_id: str, agent_id: str, now: int) -> bool: ...
    def environments_needing_work(self, limit: int) -> list[Agent]: ...
    def pending_teardowns(self, limit: int) -> list[str]:
        """Agent ids whose environment must be torn down (the agent was deleted)."""
        ...

    def finish_teardown(self, agent_id: str, done: bool) -> None:
        """Forget a finished teardown, or count a failed attempt to retry later."""
        ...

    def set_environment(
        self, agent_id: str, from_statuses: tuple[str, ...], changes: dict[str, Any], now: int
    ) -> bool: ...

    # secrets (scoped by workspace; values stay sealed)
    def put_secret(self, secret: Secret) -> Secret: ...
    def list_secrets(self, workspace_id: str) -> list[Secret]: ...
    def get_secret(self, workspace_id: str, name: str) -> Secret | None: ...
    def delete_secret(self, workspace_id: str, name: str) -> bool: ...

    # capabilities (client side scoped by workspace; see runyard.store.capabilities)
    def list_capabilities(self, workspace_id: str, agent_id: str) -> list[Capability]: ...
    def get_capability(
        self, workspace_id: str, agent_id: str, capability_id: str
    ) -> Capability | None: ...
    def capability_version(self, workspace_id: str, agent_id: str) -> int | None: ...
    def save_capability(self, cap: Capability, create: bool, now: int) -> int | None: ...
    def delete_capability(
        self, workspace_id: str, agent_id: str, capability_id: str, now: int
    ) -> int | None: ...
    def record_capability_evidence(
        self, capability_id: str, updated_at: int, status: str | None, error: str | None, now: int
    ) -> bool: ...
    def reconciliation_generation(self, agent_id: str) -> int | None: ...
    def bump_reconciliation(self, agent_id: str) -> None: ...
    def finish_reconciliation(
        self, agent_id: str, generation: int, status: str, error: str | None, now: int
    ) -> bool: ...

    # schedules (client side scoped by workspace; see runyard.store.schedules)
    def insert_schedule(self, s: Schedule) -> bool: ...
    def count_schedules(self, workspace_id: str, agent_id: str) -> int: ...
    def list_schedules(self, workspace_id: str, agent_id: str) -> list[Schedule]: ...
    def get_schedule(
        self, workspace_id: str, agent_id: str, schedule_id: str
    ) -> Schedule | None: ...
    def update_schedule(
        self,
        workspace_id: str,
        agent_id: str,
        schedule_id: str,
        changes: dict[str, Any],
        now: int,
    ) -> Schedule | None: ...
    def delete_schedule(self, workspace_id: str, agent_id: str, schedule_id: str) -> bool: ...
    def due_schedules(self, now: int, limit: int) -> list[Schedule]: ...
    def claim_schedule(self, schedule_id: str, expected_next: int, new_next: int) -> bool: ...
    def record_schedule_fire(
        self, schedule_id: str, run_id: str | None, error: str | None, now: int
    ) -> None: ...

    # webhooks (client side scoped by workspace; see runyard.store.webhooks). Deliveries
    # are enqueued by the store itself, in the transaction of each run status change.
    def insert_webhook(self, w: Webhook) -> None: ...
    def count_webhooks(self, workspace_id: str) -> int: ...
    def list_webhooks(self, workspace_id: str) -> list[Webhook]: ...
    def get_webhook(self, workspace_id: str, webhook_id: str) -> Webhook | None: ...
    def update_webhook(
        self, workspace_id: str, webhook_id: str, changes: dict[str, Any], now: int
    ) -> Webhook | None: ...
    def delete_webhook(self, workspace_id: str, webhook_id: str) -> bool: ...
    def list_deliveries(
        self, workspace_id: str, webhook_id: str, limit: int, before_seq: int | None
    ) -> list[Delivery]: ...
    def claim_deliveries(
        self, lease_token: str, lease_until: int, now: int, limit: int, max_attempts: int
    ) -> list[ClaimedDelivery]:
        """Lease due deliveries (pending and due, or with an expired lease) of enabled
        webhooks; each claim counts as an attempt."""
        ...

    def finish_delivery(
        self, delivery_id: str, lease_token: str, response_status: int, now: int
    ) -> bool: ...
    def retry_delivery(
        self,
        delivery_id: str,
        lease_token: str,
        retry_at: int | None,
        response_status: int | None,
        error: str,
    ) -> bool:
        """Record a failed attempt: pending again at ``retry_at``, or failed if None."""
        ...

    # runs: client side
    def insert_run(self, run: Run, concurrency_limit: int) -> None: ...
    def get_run(
        self, workspace_id: str, run_id: str, agent_id: str | None = None
    ) -> Run | None: ...
    def list_runs(
        self, workspace_id: str, agent_id: str | None, limit: int, before_seq: int | None
    ) -> list[Run]: ...
    def run_status(self, run_id: str) -> str | None: ...
    def filter_runs(self, workspace_id: str, where: RunFilter, limit: int) -> list[Run]:
        """Runs matching ``where``, newest first (see ``runyard.store.events_queries``)."""
        ...

    def query_runs(self, q: RunQuery) -> list[ListedRun]:
        """A filtered, keyset-paged page of runs (see ``runyard.store.run_queries``)."""
        ...

    def get_listed_run(
        self, workspace_id: str, run_id: str, viewer: str | None = None
    ) -> ListedRun | None: ...
    def oldest_agent(self, workspace_id: str) -> Agent | None: ...
    def insert_run_idempotent(
        self, run: Run, concurrency_limit: int, key: str, request_hash: str
    ) -> IdempotentSubmit:
        """Insert ``run`` unless ``key`` was already used in the workspace (then return
        that run); concurrent duplicates are decided by the unique constraint."""
        ...

    def cancel_run(
        self, workspace_id: str, agent_id: str, run_id: str, now: int
    ) -> CancelResult | None:
        """Cancel a queued run, or request cancellation of a claimed/running one."""
        ...

    def list_events(
        self, workspace_id: str, run_id: str, after_seq: int, limit: int
    ) -> list[RunEvent]:
        """The run's events with ``seq > after_seq``, oldest first (workspace-scoped)."""
        ...

    # canvas steps and artifacts (see runyard.store.canvas)
    def list_steps(self, workspace_id: str, run_id: str) -> list[Step]: ...
    def list_artifacts(self, workspace_id: str, run_id: str) -> list[Artifact]: ...
    def get_artifact(self, artifact_id: str) -> Artifact | None:
        """Unscoped: only for signed download links, which name their artifact."""
        ...

    def record_steps(self, run_id: str, lease_token: str, steps: Sequence[Step], now: int) -> bool:
        """Upsert a running run's steps under its lease (False: lease lost)."""
        ...

    def append_output(self, run_id: str, lease_token: str, text: str, now: int) -> bool:
        """Append an ``output_chunk`` event to a running run (False: lease lost)."""
        ...

    # runs: worker side (fenced by lease token)
    def claim_run(
        self, worker_id: str, lease_token: str, lease_until: int, now: int
    ) -> Run | None: ...
    def start_run(
        self,
        run_id: str,
        lease_token: str,
        now: int,
        harness_resolved: str | None,
        evidence: dict[str, Any] | None,
    ) -> bool:
        """Move a claimed run to running (a later attempt drops the earlier one's steps)."""
        ...

    def renew_lease(
        self, run_id: str, lease_token: str, lease_until: int, now: int
    ) -> LeaseState: ...
    def finish_run(self, run_id: str, lease_token: str, outcome: RunOutcome, now: int) -> bool:
        """Write a terminal outcome under the lease, with its last canvas steps and
        its artifacts; ``ValueError`` for a non-terminal one."""
        ...

    def reap_expired(self, now: int, max_claims: int) -> ReapResult:
        """Rescue runs whose lease expired before ``now``: re-queue, fail or cancel them."""
        ...
