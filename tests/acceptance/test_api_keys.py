"""Agent runtime keys over real HTTP: issue, list, use, revoke.

A key's secret (``sk_agent_…``) is shown once, at creation; listings carry
only the public record (id, name, kind, prefix, agent, times), never the
secret or its hash. Revoking makes the key 401 at once; a key is revoked
through its own agent's path only, so naming another agent's key is 404.
"""

from __future__ import annotations

import re

from tests.acceptance.test_api_support import (
    AGENTS,
    assert_envelope,
    assert_ts,
    create_agent,
    issue_key,
    runtime_agent,
)
from tests.conftest import Server

KEY_FIELDS = {"id", "name", "kind", "prefix", "agentId", "createdAt", "revokedAt", "lastUsedAt"}


def test_issue_shows_the_secret_once_and_lists_without_it(server: Server) -> None:
    with server.client() as c:
        doc = create_agent(c)
        slug, agent_id = doc["agent"]["slug"], doc["agent"]["id"]
        resp = c.post(f"{AGENTS}/{slug}/keys", json={"name": "ci"})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert set(body) == {"key", "secret"}
        key, secret = body["key"], body["secret"]
        assert set(key) == KEY_FIELDS
        assert re.fullmatch(r"sk_agent_[A-Za-z0-9]{40}", secret), secret
        assert key["id"].startswith("key_")
        assert key["name"] == "ci"
        assert key["kind"] == "agent"
        assert key["agentId"] == agent_id
        assert key["prefix"] == secret[: len("sk_agent_") + 4]
        assert_ts(key["createdAt"])
        assert key["revokedAt"] is None and key["lastUsedAt"] is None

        # A body is optional: a nameless key.
        bare = c.post(f"{AGENTS}/{slug}/keys")
        assert bare.status_code == 201, bare.text
        assert bare.json()["key"]["name"] == ""
        assert bare.json()["secret"] != secret

        listing = c.get(f"{AGENTS}/{slug}/keys")
        assert listing.status_code == 200
        keys = listing.json()["keys"]
        assert set(listing.json()) == {"keys"}
        assert {k["id"] for k in keys} == {key["id"], bare.json()["key"]["id"]}
        for k in keys:
            assert set(k) == KEY_FIELDS
        assert secret not in listing.text
        assert bare.json()["secret"] not in listing.text
        assert not re.search(r"[0-9a-f]{64}", listing.text), "a hash leaked into the listing"
        assert "hash" not in listing.text.lower()


def test_use_is_recorded_and_revoke_is_immediate(server: Server) -> None:
    with server.client() as c:
        slug = create_agent(c)["agent"]["slug"]
        key, secret = issue_key(c, slug, "short-lived")
        agent_id = key["agentId"]
        with server.client(secret) as runtime:
            assert runtime.get(f"/v1/agents/{agent_id}/status").status_code == 200
            used = {k["id"]: k for k in c.get(f"{AGENTS}/{slug}/keys").json()["keys"]}[key["id"]]
            assert_ts(used["lastUsedAt"])

            resp = c.delete(f"{AGENTS}/{slug}/keys/{key['id']}")
            assert resp.status_code == 200, resp.text
            revoked = resp.json()["key"]
            assert revoked["id"] == key["id"]
            assert_ts(revoked["revokedAt"])
            assert secret not in resp.text

            assert_envelope(runtime.get(f"/v1/agents/{agent_id}/status"), 401, "UNAUTHORIZED")
            listed = {k["id"]: k for k in c.get(f"{AGENTS}/{slug}/keys").json()["keys"]}
            assert listed[key["id"]]["revokedAt"] == revoked["revokedAt"]

            # Revoking again changes nothing and keeps the first revocation time.
            again = c.delete(f"{AGENTS}/{slug}/keys/{key['id']}")
            assert again.status_code == 200
            assert again.json()["key"]["revokedAt"] == revoked["revokedAt"]
            assert_envelope(runtime.get(f"/v1/agents/{agent_id}/status"), 401, "UNAUTHORIZED")


def test_revoking_another_agents_key_is_404_and_leaves_it_working(server: Server) -> None:
    owner = runtime_agent(server)
    with owner.client, server.client() as c:
        bystander = create_agent(c)["agent"]["slug"]
        resp = c.delete(f"{AGENTS}/{bystander}/keys/{owner.key_id}")
        assert_envelope(resp, 404, "NOT_FOUND")
        assert owner.client.get(f"{owner.base}/status").status_code == 200
        assert owner.key_id not in c.get(f"{AGENTS}/{bystander}/keys").text
        missing = c.delete(f"{AGENTS}/{owner.slug}/keys/key_{'0' * 26}")
        assert_envelope(missing, 404, "NOT_FOUND")
        no_agent = c.delete(f"{AGENTS}/no-such-agent-here/keys/{owner.key_id}")
        assert_envelope(no_agent, 404, "NOT_FOUND")
        assert_envelope(c.post(f"{AGENTS}/no-such-agent-here/keys"), 404, "NOT_FOUND")


def test_key_body_validation(server: Server) -> None:
    with server.client() as c:
        slug = create_agent(c)["agent"]["slug"]
        path = f"{AGENTS}/{slug}/keys"
        assert_envelope(c.post(path, json={"name": "x" * 201}), 400, "BAD_REQUEST")
        assert_envelope(c.post(path, json={"name": 7}), 400, "BAD_REQUEST")
        assert_envelope(c.post(path, json={"kind": "workspace"}), 400, "BAD_REQUEST")
        assert_envelope(c.post(path, json=["name"]), 400, "BAD_REQUEST")
        assert c.get(path).json() == {"keys": []}
