"""The webhook dispatcher: sends the deliveries the store's outbox enqueued.

Every worker runs this loop. Each round leases a batch of due deliveries
(``Store.claim_deliveries``: a conditional update, so of several workers on
one database each delivery goes to one of them) and POSTs them at once:
compact JSON signed with the webhook's secret (``Runyard-Signature: t=…,v1=…``),
with ``Runyard-Event`` and ``Runyard-Delivery`` headers. A 2xx answer is
delivered; anything else (another status, a redirect, which is never
followed, a network error, the time budget running out) is retried after
``base · 2^(attempt-1)`` seconds, capped and jittered, until the maximum number
of attempts, then the delivery ends ``failed`` with its last error. Response
bodies are never read.

The target is checked again at send time against DNS rebinding: the host is
resolved here, every address must pass the private-target policy, and the
connection goes to the checked address (the ``Host`` header and, for https,
the TLS server name and certificate check keep the host name). Connections
are never reused, so one host's verified TLS session never carries another's
request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import httpx

from runyard import __version__
from runyard.domain.webhooks import (
    SIGNATURE_HEADER,
    ClaimedDelivery,
    body,
    retry_delay,
    signature,
    target,
)
from runyard.sandbox.egress import is_ip, system_resolver
from runyard.secrets_box import SecretBox, load_key
from runyard.services.webhooks import refused_addresses, secret_context
from runyard.settings import Settings
from runyard.store.base import Store
from runyard.types import now_millis

log = logging.getLogger("runyard.webhooks")

BATCH = 16
MAX_DELAY_SECONDS = 3600.0
LEASE_MARGIN_SECONDS = 60.0
MAX_ERROR = 300
USER_AGENT = f"runyard-webhooks/{__version__}"

AsyncResolver = Callable[[str, int], Awaitable[list[str]]]


class Refused(Exception):
    """The target is not allowed (any more): a failed attempt, retried like others."""


class WebhookDispatcher:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        box: SecretBox | None = None,
        *,
        resolve: AsyncResolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._box = box or SecretBox(load_key(settings.secret_key, settings.data_dir))
        self._allow_private = settings.webhook_allow_private
        self._base = settings.webhook_retry_base_seconds
        self._max_attempts = settings.webhook_max_attempts
        self._timeout = settings.webhook_timeout_seconds
        self._resolve = resolve
        self._rand = rand
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: connect where we checked
            verify=verify,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def tick(self) -> int:
        """Lease and send one batch of due deliveries; returns how many it leased."""
        now = now_millis()
        lease_ms = int((self._timeout + LEASE_MARGIN_SECONDS) * 1000)
        claimed = await asyncio.to_thread(
            self._store.claim_deliveries,
            secrets.token_hex(16),
            now + lease_ms,
            now,
            BATCH,
            self._max_attempts,
        )
        if claimed:
            await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def _deliver(self, c: ClaimedDelivery) -> None:
        d = c.delivery
        status: int | None = None
        error: str | None = None
        try:
            status = await asyncio.wait_for(self._send(c), self._timeout)
            if not 200 <= status < 300:
                error = f"HTTP {status} {_reason(status)}".strip()
        except TimeoutError:
            error = f"no answer within {self._timeout:g} s"
        except Refused as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # a bug must not stop the other deliveries
            log.exception("webhook delivery %s failed unexpectedly", d.id)
            error = f"internal error: {type(exc).__name__}"
        now = now_millis()
        try:
            if error is None and status is not None:
                await asyncio.to_thread(
                    self._store.finish_delivery, d.id, c.lease_token, status, now
                )
                return
            retry_at: int | None = None
            if d.attempts < self._max_attempts:
                delay = retry_delay(d.attempts, self._base, MAX_DELAY_SECONDS, self._rand())
                retry_at = now + int(delay * 1000)
            log.info("webhook delivery %s attempt %d failed: %s", d.id, d.attempts, error)
            await asyncio.to_thread(
                self._store.retry_delivery,
                d.id,
                c.lease_token,
                retry_at,
                status,
                (error or "failed")[:MAX_ERROR],
            )
        except Exception:
            # The lease expires and another round retries the delivery.
            log.exception("could not record the result of webhook delivery %s", d.id)

    async def _send(self, c: ClaimedDelivery) -> int:
        """POST the delivery to the checked address; returns the answer's status code."""
        d = c.delivery
        try:
            scheme, host, port = target(c.url)
        except ValueError as exc:
            raise Refused(f"invalid webhook URL: {exc}") from exc
        if is_ip(host):
            addresses = [host]
        else:
            try:
                addresses = await self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise Refused(f"the host {host!r} does not resolve: {exc}") from exc
            if not addresses:
                raise Refused(f"the host {host!r} does not resolve")
        refused = refused_addresses(addresses, self._allow_private)
        if refused:
            raise Refused(
                f"the host {host!r} resolves to {refused[0]}, an address webhooks may not"
                " be sent to"
            )
        secret = self._box.open(c.secret_ciphertext, secret_context(d.workspace_id, d.webhook_id))
        raw = body(d)
        original = httpx.URL(c.url)
        headers = {
            "Host": original.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Runyard-Event": d.event_type,
            "Runyard-Delivery": d.id,
            SIGNATURE_HEADER: signature(secret, int(time.time()), raw),
        }
        pinned = scheme == "https" and not is_ip(host)
        extensions = {"sni_hostname": host} if pinned else {}
        url = original.copy_with(host=addresses[0].split("%", 1)[0])
        async with self._http.stream(
            "POST", url, content=raw, headers=headers, extensions=extensions
        ) as response:
            return response.status_code

    async def loop(self, stop: asyncio.Event, interval: float) -> None:
        try:
            while not stop.is_set():
                leased = 0
                try:
                    leased = await self.tick()
                except Exception:
                    log.exception("webhook dispatch round failed")
                if leased >= BATCH:
                    continue  # more may be due: no pause
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except TimeoutError:
                    continue
        finally:
            await self.aclose()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
