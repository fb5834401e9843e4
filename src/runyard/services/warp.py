"""The Warp ambient-agents vocabulary over the run services: states, cursors, queries.

**State mapping** (the one place; :data:`WARP_STATES`): ``queued`` ->
``QUEUED``, or ``PENDING`` while the agent's environment is being
provisioned (``provisioning``); ``claimed`` -> ``CLAIMED``;
``running`` -> ``INPROGRESS``; ``completed``/``partial`` -> ``SUCCEEDED``;
``failed``/``timed_out`` -> ``FAILED``; ``cancelled`` -> ``CANCELLED``.
``ERROR`` and the other states of the Warp vocabulary are never produced.

**Which agent runs a prompt**: ``config.name`` names an agent slug of the
caller's workspace; without it, the workspace's agent with slug ``default``,
else its oldest agent. A workspace with no agent is a 400.

**Visibility**: a workspace key sees every run of its workspace; a personal
key sees the runs it created plus the runs created with ``team: true``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runyard.domain.entities import Agent, KeyKind
from runyard.errors import BadRequest, Forbidden, NotFound
from runyard.services import cursors
from runyard.services.keys import Principal
from runyard.store.base import Store
from runyard.store.run_queries import PROVISIONING_ENV, ListedRun, SortColumn

WARP_STATES: dict[str, str] = {
    "queued": "QUEUED",
    "claimed": "CLAIMED",
    "running": "INPROGRESS",
    "completed": "SUCCEEDED",
    "partial": "SUCCEEDED",
    "failed": "FAILED",
    "timed_out": "FAILED",
    "cancelled": "CANCELLED",
}
PENDING = "PENDING"
STATES = ("QUEUED", PENDING, "CLAIMED", "INPROGRESS", "SUCCEEDED", "FAILED", "CANCELLED")
SOURCES = ("LINEAR", "API", "SLACK", "LOCAL", "SCHEDULED_AGENT")
DEFAULT_AGENT_SLUG = "default"


# runyard's run sources in Warp's vocabulary: runs from the CLI or a web app
# are ``LOCAL``; runyard has no Linear or Slack integration, so those filters
# match nothing.
WARP_SOURCES = {
    "API": "API",
    "CLI": "LOCAL",
    "WEB_APP": "LOCAL",
    "SCHEDULED_AGENT": "SCHEDULED_AGENT",
}


def warp_source(source: str) -> str:
    return WARP_SOURCES.get(source, "API")


def source_filter(source: str) -> tuple[str, ...]:
    """The runyard sources a Warp ``source`` filter stands for (maybe none)."""
    return tuple(s for s, w in WARP_SOURCES.items() if w == source) or ("",)


def warp_state(status: str, env_status: str | None = None) -> str:
    """The Warp state of a run in ``status`` whose agent's environment is ``env_status``."""
    if status == "queued" and env_status in PROVISIONING_ENV:
        return PENDING
    return WARP_STATES.get(status, "FAILED")


def state_filter(state: str) -> tuple[tuple[str, ...], bool | None]:
    """The run statuses (and queued-run provisioning flag) a Warp ``state`` stands for."""
    if state not in STATES:
        raise BadRequest(
            f"unknown state {state!r}; known: {', '.join(STATES)}",
            {"field": "state", "allowed": list(STATES)},
        )
    if state in ("QUEUED", PENDING):
        return ("queued",), state == PENDING
    return tuple(s for s, w in WARP_STATES.items() if w == state), None


def viewer_of(who: Principal) -> str | None:
    """The key whose own runs a caller is limited to (``None``: the whole workspace)."""
    if who.kind is KeyKind.AGENT:
        raise Forbidden("agent runtime keys cannot use this API; use a workspace or personal key")
    return who.key_id if who.kind is KeyKind.USER else None


def resolve_agent(store: Store, workspace_id: str, name: str | None) -> Agent:
    """The agent that runs a prompt: ``config.name``, else ``default``, else the oldest."""
    if name is not None:
        agent = store.get_agent(workspace_id, slug=name)
        if agent is None:
            raise NotFound(f"agent {name!r} not found", {"field": "config.name"})
        return agent
    agent = store.get_agent(workspace_id, slug=DEFAULT_AGENT_SLUG) or store.oldest_agent(
        workspace_id
    )
    if agent is None:
        raise BadRequest(
            "this workspace has no agent to run the prompt: create one first",
            {"field": "config.name"},
        )
    return agent


def auto_title(prompt: str) -> str:
    """A title from the prompt's first non-empty line, at most 80 characters."""
    line = next((ln.strip() for ln in prompt.splitlines() if ln.strip()), "")
    return (line[:77] + "...") if len(line) > 80 else (line or "Agent run")


@dataclass(frozen=True)
class Position:
    """Where a page starts: after the row with this sort value and seq, in this order."""

    sort_by: SortColumn
    descending: bool
    value: int
    seq: int


_CURSOR = re.compile(r"(created_at|updated_at):(asc|desc):([0-9]{1,18}):([0-9]{1,18})")


def encode_cursor(pos: Position) -> str:
    order = "desc" if pos.descending else "asc"
    return cursors.encode("w1", f"{pos.sort_by}:{order}:{pos.value}:{pos.seq}")


def decode_cursor(cursor: str, sort_by: SortColumn, descending: bool) -> tuple[int, int]:
    """The ``(value, seq)`` a cursor points after; a foreign or mismatched cursor is a 400."""
    found = _CURSOR.fullmatch(cursors.decode(cursor, "w1", _CURSOR))
    assert found is not None  # decode() checked the pattern
    if found[1] != sort_by or (found[2] == "desc") != descending:
        raise BadRequest(
            "the cursor belongs to another sort_by/sort_order; repeat the first request's",
            {"field": "cursor"},
        )
    return int(found[3]), int(found[4])


def next_cursor(listed: list[ListedRun], sort_by: SortColumn, descending: bool) -> str:
    last = listed[-1].run
    value = last.created_at if sort_by == "created_at" else last.updated_at
    return encode_cursor(Position(sort_by, descending, value, last.seq))
