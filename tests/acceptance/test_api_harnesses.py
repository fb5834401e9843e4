"""``PATCH /v1/workspaces/{ws}/agents/{slug}/harnesses`` over real HTTP.

``harnessTargets`` is the complete set of the agent's harnesses: unknown
names, duplicates, two defaults, or an enabled set without exactly one
enabled default are 400 with a message that says which rule was broken and
leave the agent unchanged. A valid set replaces the old one entirely, and a
ready environment moves its ``runtimeReconciliation`` to ``pending`` until
the worker has applied it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.test_api_support import (
    AGENTS,
    assert_agent_doc,
    assert_envelope,
    create_agent,
    get_agent,
    poll,
    unique,
    wait_ready,
)
from tests.conftest import Server

VALID_SET = [
    {"harnessName": "shell", "enabled": True, "role": "default"},
    {"harnessName": "command", "enabled": False, "role": "available"},
    {"harnessName": "hermes", "enabled": True, "role": "available"},
]


@pytest.mark.parametrize(
    ("targets", "needle"),
    [
        ([{"harnessName": "notaharness", "role": "default"}], "unknown harness 'notaharness'"),
        (
            [
                {"harnessName": "shell", "role": "default"},
                {"harnessName": "hermes", "role": "default"},
            ],
            'at most one harness target may use role "default"',
        ),
        (
            [{"harnessName": "shell", "role": "available"}],
            'exactly one enabled "default"',
        ),
        (
            [
                {"harnessName": "shell", "enabled": False, "role": "default"},
                {"harnessName": "hermes", "enabled": True, "role": "available"},
            ],
            'exactly one enabled "default"',
        ),
        (
            [
                {"harnessName": "shell", "role": "default"},
                {"harnessName": "shell", "role": "available"},
            ],
            "only once",
        ),
        ([{"harnessName": "shell", "role": "boss"}], "role"),
        ([{"harnessName": "shell", "enabled": "yes", "role": "default"}], "enabled"),
        ([{"harnessName": "", "role": "default"}], "harnessName"),
        ([{"role": "default"}], "harnessName"),
    ],
)
def test_harness_update_rules(server: Server, targets: list[dict[str, Any]], needle: str) -> None:
    with server.client() as c:
        slug = create_agent(c)["agent"]["slug"]
        resp = c.patch(f"{AGENTS}/{slug}/harnesses", json={"harnessTargets": targets})
        body = assert_envelope(resp, 400, "BAD_REQUEST")
        assert needle in body["message"], body["message"]
        assert body["data"]["errors"][0]["field"].startswith("harnessTargets")
        assert get_agent(c, slug)["agent"]["harnessTargets"] == [
            {"harnessName": "shell", "enabled": True, "role": "default"}
        ]


def test_harness_update_replaces_the_complete_set_and_reconciles(server: Server) -> None:
    with server.client() as c:
        slug = create_agent(c)["agent"]["slug"]
        ready = wait_ready(c, slug)
        resp = c.patch(f"{AGENTS}/{slug}/harnesses", json={"harnessTargets": VALID_SET})
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert_agent_doc(doc)
        assert doc["agent"]["harnessTargets"] == VALID_SET
        env = doc["environment"]
        assert env["status"] == "ready"
        assert env["runtimeReconciliation"] == {"status": "pending", "lastError": None}
        # The environment record changed (reconciliation is part of it): updatedAt moves.
        assert env["updatedAt"] > ready["environment"]["updatedAt"]

        applied = poll(
            lambda: get_agent(c, slug),
            lambda d: d["environment"]["runtimeReconciliation"]["status"] == "applied",
        )
        assert applied["environment"]["status"] == "ready"
        assert applied["environment"]["runtimeReconciliation"]["lastError"] is None
        assert applied["agent"]["harnessTargets"] == VALID_SET

        # A smaller set replaces it entirely; it is not merged.
        only_hermes = [{"harnessName": "hermes", "enabled": True, "role": "default"}]
        resp = c.patch(f"{AGENTS}/{slug}/harnesses", json={"harnessTargets": only_hermes})
        assert resp.status_code == 200, resp.text
        assert get_agent(c, slug)["agent"]["harnessTargets"] == only_hermes


def test_harness_update_body_shape(server: Server) -> None:
    with server.client() as c:
        slug = create_agent(c)["agent"]["slug"]
        path = f"{AGENTS}/{slug}/harnesses"
        assert_envelope(c.patch(path, json={}), 400, "BAD_REQUEST")
        assert_envelope(c.patch(path, json={"harnessTargets": {}}), 400, "BAD_REQUEST")
        extra = c.patch(path, json={"harnessTargets": VALID_SET, "merge": True})
        assert assert_envelope(extra, 400, "BAD_REQUEST")["data"]["errors"][0]["field"] == "merge"
        missing = c.patch(f"{AGENTS}/{unique('nobody')}/harnesses", json={"harnessTargets": []})
        assert_envelope(missing, 404, "NOT_FOUND")
