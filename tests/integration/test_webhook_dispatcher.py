"""The webhook dispatcher against a real receiver: signed POSTs, retries with backoff,
redirects never followed, failure after the last attempt, the send-time address check
(DNS rebinding), and connections pinned to the checked address with the host name
kept for ``Host``, TLS SNI and the certificate check."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard.domain.webhooks import Delivery, Webhook, WebhookCreate, payload
from runyard.secrets_box import SecretBox
from runyard.services.webhooks import WebhookService
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis
from runyard.worker.webhooks import USER_AGENT, WebhookDispatcher
from tests.conftest import free_port
from tests.fakes.webhook_receiver import Receiver, tls_contexts
from tests.integration import factories as f

PUBLIC = "93.184.216.34"


class Rig:
    """A workspace with one webhook, and a dispatcher built the way a worker builds it."""

    def __init__(
        self,
        store: Store,
        tmp_path: Path,
        url: str,
        *,
        names: dict[str, str] | None = None,
        allow_private: bool = True,
        verify: ssl.SSLContext | bool = True,
        **settings: Any,
    ) -> None:
        self.store = store
        box = SecretBox(os.urandom(32))
        names = names or {}
        service = WebhookService(
            store, box, allow_private=True, resolve=lambda host, port: [PUBLIC]
        )
        self.ws = f.workspace(store)
        self.agent = f.agent(store, self.ws)
        self.webhook: Webhook
        self.webhook, self.secret = service.create(
            self.ws.id, WebhookCreate(url=url, events=["run.started"])
        )

        async def resolve(host: str, port: int) -> list[str]:
            if host not in names:
                raise OSError("Name or service not known")
            return [names[host]]

        self.dispatcher = WebhookDispatcher(
            store,
            Settings(
                data_dir=tmp_path,
                webhook_allow_private=allow_private,
                webhook_retry_base_seconds=0.01,
                **settings,
            ),
            box,
            resolve=resolve,
            verify=verify,
            rand=lambda: 0.0,
        )

    def start_a_run(self) -> str:
        run = f.run(self.store, self.agent)
        _, token = f.claim_one(self.store)
        assert self.store.start_run(run.id, token, now_millis(), "shell", None)
        return run.id

    def deliveries(self) -> list[Delivery]:
        return self.store.list_deliveries(self.ws.id, self.webhook.id, 100, None)

    def drive(
        self, *stages: Callable[[list[Delivery]], bool], seconds: float = 30
    ) -> list[Delivery]:
        """Run dispatcher rounds until the deliveries satisfy each stage in turn (bounded);
        returns the newest delivery as it was at each stage."""

        async def rounds() -> list[Delivery]:
            seen: list[Delivery] = []
            deadline = time.monotonic() + seconds
            try:
                for until in stages:
                    while True:
                        await self.dispatcher.tick()
                        found = self.deliveries()
                        if until(found):
                            seen.append(found[0])
                            break
                        assert time.monotonic() < deadline, f"not reached; last: {found!r}"
                        await asyncio.sleep(0.02)
            finally:
                await self.dispatcher.aclose()
            return seen

        return asyncio.run(rounds())


def _settled(ds: list[Delivery]) -> bool:
    return bool(ds) and ds[0].status in ("delivered", "failed")


def test_a_delivery_is_posted_signed_and_recorded(store: Store, tmp_path: Path) -> None:
    with Receiver() as rx:
        rig = Rig(store, tmp_path, rx.url)
        rx.secret = rig.secret
        run_id = rig.start_a_run()
        [done] = rig.drive(_settled)
        [got] = rx.wait_for(1)
    assert (done.status, done.attempts, done.response_status) == ("delivered", 1, 200)
    assert done.delivered_at is not None and done.last_error is None
    assert got.method == "POST" and got.path == "/hook" and got.verified
    assert got.headers["content-type"] == "application/json"
    assert got.headers["runyard-event"] == "run.started"
    assert got.headers["runyard-delivery"] == done.id
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers["host"] == f"127.0.0.1:{rx.port}"
    doc = json.loads(got.body)
    assert doc == payload(done)
    assert doc["data"]["run"]["id"] == run_id and doc["data"]["run"]["status"] == "running"


def test_failed_answers_are_retried_with_backoff_until_one_succeeds(
    store: Store, tmp_path: Path
) -> None:
    with Receiver() as rx:
        rx.script(500, 503)
        rig = Rig(store, tmp_path, rx.url)
        rx.secret = rig.secret
        rig.start_a_run()
        waiting, done = rig.drive(lambda ds: bool(ds) and ds[0].attempts == 1, _settled)
        assert (waiting.status, waiting.last_error) == ("pending", "HTTP 500 Internal Server Error")
        assert waiting.response_status == 500 and waiting.next_attempt_at is not None
        got = rx.wait_for(3)
    assert (done.status, done.attempts, done.response_status) == ("delivered", 3, 200)
    assert done.last_error is None
    assert [r.answered for r in got] == [500, 503, 200]
    assert all(r.verified for r in got)
    assert len({r.headers["runyard-delivery"] for r in got}) == 1  # one delivery, retried
    assert len({r.body for r in got}) == 1  # the same bytes every time


def test_redirects_are_not_followed_and_the_last_attempt_fails(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with Receiver() as rx:
        rx.script(302, 302, 302)
        rig = Rig(sqlite_store, tmp_path, rx.url, webhook_max_attempts=2)
        rig.start_a_run()
        [done] = rig.drive(_settled)
        got = rx.wait_for(2)
    assert (done.status, done.attempts, done.response_status) == ("failed", 2, 302)
    assert done.last_error == "HTTP 302 Found" and done.next_attempt_at is None
    assert [r.path for r in got] == ["/hook", "/hook"]  # never /redirected


def test_a_network_error_is_a_failed_attempt(sqlite_store: Store, tmp_path: Path) -> None:
    rig = Rig(sqlite_store, tmp_path, f"http://127.0.0.1:{free_port()}/", webhook_max_attempts=1)
    rig.start_a_run()
    [done] = rig.drive(_settled)
    assert (done.status, done.attempts, done.response_status) == ("failed", 1, None)
    assert done.last_error is not None and done.last_error.startswith("ConnectError")


def test_no_answer_within_the_timeout_is_a_failed_attempt(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with Receiver() as rx:
        rx.hang()
        rig = Rig(
            sqlite_store,
            tmp_path,
            rx.url,
            webhook_max_attempts=1,
            webhook_timeout_seconds=0.3,
        )
        rig.start_a_run()
        [done] = rig.drive(_settled)
    assert done.status == "failed" and done.last_error == "no answer within 0.3 s"


def test_the_address_is_checked_again_at_send_time(sqlite_store: Store, tmp_path: Path) -> None:
    # Created while the name resolved to a public address; it now resolves to loopback.
    with Receiver() as rx:
        url = f"http://hooks.test:{rx.port}/hook"
        rig = Rig(
            sqlite_store,
            tmp_path,
            url,
            names={"hooks.test": "127.0.0.1"},
            allow_private=False,
            webhook_max_attempts=1,
        )
        rig.start_a_run()
        [done] = rig.drive(_settled)
        assert rx.requests == []
    assert done.status == "failed"
    assert done.last_error is not None and "127.0.0.1" in done.last_error


def test_it_connects_to_the_checked_address_and_keeps_the_host_name(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with Receiver() as rx:
        url = f"http://hooks.test:{rx.port}/hook"
        rig = Rig(sqlite_store, tmp_path, url, names={"hooks.test": "127.0.0.1"})
        rx.secret = rig.secret
        rig.start_a_run()
        [done] = rig.drive(_settled)
        [got] = rx.wait_for(1)
    assert done.status == "delivered" and got.verified
    assert got.headers["host"] == f"hooks.test:{rx.port}"


def test_https_keeps_sni_and_checks_the_certificate_against_the_host_name(
    sqlite_store: Store, tmp_path: Path
) -> None:
    server_tls, client_tls = tls_contexts("hooks.test", tmp_path / "tls")
    with Receiver(tls=server_tls) as rx:
        url = f"https://hooks.test:{rx.port}/hook"
        rig = Rig(sqlite_store, tmp_path, url, names={"hooks.test": "127.0.0.1"}, verify=client_tls)
        rx.secret = rig.secret
        rig.start_a_run()
        [done] = rig.drive(_settled)
        [got] = rx.wait_for(1)
    assert done.status == "delivered" and got.verified
    assert got.headers["host"] == f"hooks.test:{rx.port}"


def test_https_refuses_a_certificate_for_another_name(sqlite_store: Store, tmp_path: Path) -> None:
    server_tls, client_tls = tls_contexts("other.test", tmp_path / "tls")
    with Receiver(tls=server_tls) as rx:
        url = f"https://hooks.test:{rx.port}/hook"
        rig = Rig(
            sqlite_store,
            tmp_path,
            url,
            names={"hooks.test": "127.0.0.1"},
            verify=client_tls,
            webhook_max_attempts=1,
        )
        rig.start_a_run()
        [done] = rig.drive(_settled)
        assert rx.requests == []
    assert done.status == "failed"
    assert done.last_error is not None and "CERTIFICATE_VERIFY_FAILED" in done.last_error
