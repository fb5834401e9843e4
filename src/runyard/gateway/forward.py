"""Forwarding one model request upstream: policy, credential, relay, metering, record.

For each request on a protocol endpoint the forwarder checks the protocol
family and the model against the session's policy, rewrites the body (the
resolved model; usage reporting for streams), sends it to the configured
upstream with the injected credential and only allowlisted client headers,
and relays the answer: a whole body, or the provider's SSE stream byte for
byte while a decoder reads usage out of a copy. Every request on a model
endpoint ends as one record in the session's ledger, refusals and upstream
failures included. Provider error text is scrubbed of the credential before
it reaches the client; 401/403 from the provider (a credential problem of
the operator's, not the sandbox's) are reported without the provider's text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from runyard.errors import RunyardError
from runyard.gateway.errors import (
    GatewayError,
    InvalidModelRequest,
    ProtocolMismatch,
    UpstreamRejected,
    UpstreamTimedOut,
    UpstreamUnavailable,
    scrub,
)
from runyard.gateway.http import Request, Response
from runyard.gateway.metering import CallRecord, Ledger, Usage
from runyard.gateway.policy import MAX_MODEL_NAME, GatewayPolicy
from runyard.gateway.protocols import ClientProtocol, upstream_error_fields
from runyard.gateway.sse import SseDecoder

log = logging.getLogger("runyard.gateway")

RELAYED_HEADERS = ("request-id", "x-request-id", "retry-after", "openai-processing-ms")
MAX_ERROR_BODY = 65_536


class Forwarder:
    """Forwards requests of one session; holds no state besides the session's ledger."""

    def __init__(self, client: httpx.AsyncClient, policy: GatewayPolicy, ledger: Ledger) -> None:
        self._client = client
        self._policy = policy
        self.ledger = ledger

    async def forward(self, protocol: ClientProtocol, request: Request) -> Response:
        call = CallRecord(protocol=protocol.name)
        if protocol.metered:
            self.ledger.begin(call)
        try:
            return await self._forward(protocol, request, call)
        except asyncio.CancelledError:
            if call.completed_at is None:  # the session closed while waiting on the upstream
                self._record(protocol, call, "error", "interrupted: the gateway session closed")
            raise

    async def _forward(
        self, protocol: ClientProtocol, request: Request, call: CallRecord
    ) -> Response:
        try:
            body = _json_object(request.body)
            call.stream = body.get("stream") is True
            requested = body.get("model")
            if isinstance(requested, str) and requested:
                call.model = requested[:MAX_MODEL_NAME]
            if protocol.family != self._policy.family:
                raise ProtocolMismatch(_mismatch(protocol, self._policy))
            body["model"] = call.model = self._policy.resolve_model(requested)
            protocol.prepare(body)
            upstream = await self._send(protocol, request, body)
        except RunyardError as exc:
            return self._refuse(protocol, call, exc)
        if upstream.status_code >= 400:
            return self._refuse(protocol, call, await self._rejection(upstream))
        content_type = upstream.headers.get("content-type", "")
        headers = [(k, v) for k in RELAYED_HEADERS if (v := upstream.headers.get(k))]
        if call.stream and content_type.startswith("text/event-stream"):
            relay = _Relay(protocol, upstream, call, self.ledger, self._policy.run_id)
            headers += [("content-type", content_type), ("cache-control", "no-cache")]
            return Response(upstream.status_code, headers, stream=relay.chunks(), close=relay.close)
        try:
            raw = await upstream.aread()
        except httpx.HTTPError as exc:
            return self._refuse(protocol, call, _transport_error(exc, self._policy))
        finally:
            await upstream.aclose()
        usage = protocol.usage_from_body(_loads(raw)) if protocol.metered else None
        if usage is not None:
            call.usage = usage
        self._record(protocol, call, upstream.status_code)
        headers.append(("content-type", content_type or "application/json"))
        return Response(upstream.status_code, headers, raw)

    async def _send(
        self, protocol: ClientProtocol, request: Request, body: dict[str, Any]
    ) -> httpx.Response:
        query = [(k, v) for k, v in parse_qsl(request.query) if k in protocol.query_params]
        url = self._policy.base_url + protocol.upstream_path
        outgoing = self._client.build_request(
            "POST",
            url + ("?" + urlencode(query) if query else ""),
            content=json.dumps(body).encode(),
            headers=protocol.upstream_headers(self._policy.api_key, request.headers),
        )
        try:
            return await self._client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self._policy) from None

    async def _rejection(self, upstream: httpx.Response) -> UpstreamRejected:
        status = upstream.status_code
        try:
            raw = b""
            async for chunk in upstream.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass
        finally:
            await upstream.aclose()
        message, kind = upstream_error_fields(_loads(raw))
        provider = self._policy.provider
        if status in (401, 403):
            # The sandbox cannot fix the operator's credential; tell it nothing about it.
            text = (
                f"the {provider} upstream refused runyard's credential for this agent "
                f"(HTTP {status}); the operator must check the agent's provider key"
            )
            kind = "authentication_error" if status == 401 else "permission_error"
        else:
            detail = scrub(message, self._policy.api_key) if message else "no error message"
            text = f"the {provider} upstream answered HTTP {status}: {detail}"
        return UpstreamRejected(
            text,
            upstream_status=status,
            upstream_type=kind,
            retry_after=upstream.headers.get("retry-after"),
        )

    def _refuse(self, protocol: ClientProtocol, call: CallRecord, exc: RunyardError) -> Response:
        status = exc.client_status() if isinstance(exc, GatewayError) else exc.status
        reason = exc.reason if isinstance(exc, GatewayError) else exc.code.lower()
        message = scrub(exc.message, self._policy.api_key)
        upstream_type = exc.upstream_type if isinstance(exc, UpstreamRejected) else None
        recorded: int | str = status
        if isinstance(exc, UpstreamUnavailable | UpstreamTimedOut):
            recorded = "error"  # no HTTP answer from the provider
        elif isinstance(exc, UpstreamRejected):
            recorded = exc.upstream_status
        self._record(protocol, call, recorded, message)
        headers = [("content-type", "application/json")]
        if isinstance(exc, UpstreamRejected) and exc.retry_after:
            headers.append(("retry-after", exc.retry_after))
        body = protocol.error_body(status, message, reason, upstream_type)
        return Response(status, headers, body)

    def _record(
        self,
        protocol: ClientProtocol,
        call: CallRecord,
        status: int | str,
        error: str | None = None,
    ) -> None:
        call.finish(status, error)
        _log_call(self._policy.run_id, protocol, call)
        if protocol.metered:
            self.ledger.record(call)


class _Relay:
    """Relays one upstream SSE stream to the client, metering it; ``close`` records the call."""

    def __init__(
        self,
        protocol: ClientProtocol,
        upstream: httpx.Response,
        call: CallRecord,
        ledger: Ledger,
        run_id: str,
    ) -> None:
        self._protocol = protocol
        self._run_id = run_id
        self._upstream = upstream
        self._call = call
        self._ledger = ledger
        self._usage = Usage()
        self._finished = False
        self._closed = False
        self._generator = self._chunks()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._generator

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        decoder = SseDecoder()
        try:
            async for chunk in self._upstream.aiter_bytes():
                if self._protocol.metered:
                    for event in decoder.feed(chunk):
                        usage = self._protocol.usage_from_event(event)
                        if usage is not None:
                            self._usage.update_latest(usage)
                yield chunk
        except httpx.HTTPError as exc:
            message = f"the upstream stream broke off ({type(exc).__name__})"
            self._call.error = message
            self._finished = True
            yield self._protocol.stream_error(message, "upstream_unavailable")
            return
        self._finished = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._generator.aclose()
        finally:
            await self._upstream.aclose()
            call = self._call
            call.usage = self._usage
            if call.error is not None:
                call.finish("error")  # the error was set when the stream broke
            elif not self._finished:
                call.finish(
                    self._upstream.status_code,
                    "the stream ended early (client disconnected or session closed)",
                )
            else:
                call.finish(self._upstream.status_code)
            _log_call(self._run_id, self._protocol, call)
            if self._protocol.metered:
                self._ledger.record(call)


def _log_call(run_id: str, protocol: ClientProtocol, call: CallRecord) -> None:
    # Failures at info (operators look for them), successes at debug; never a secret.
    level = logging.DEBUG if call.error is None else logging.INFO
    log.log(
        level,
        "model call run=%s protocol=%s model=%s stream=%s status=%s error=%s",
        run_id,
        protocol.name,
        call.model,
        call.stream,
        call.status,
        call.error,
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidModelRequest("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidModelRequest("the request body must be a JSON object")
    return body


def _loads(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _mismatch(protocol: ClientProtocol, policy: GatewayPolicy) -> str:
    use = "POST /v1/messages" if policy.family == "anthropic" else "POST /v1/chat/completions"
    return (
        f"this agent's model provider is {policy.provider}, which does not speak the "
        f"{protocol.name} protocol; use {use} (the gateway does not translate protocols)"
    )


def _transport_error(exc: httpx.HTTPError, policy: GatewayPolicy) -> GatewayError:
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimedOut(f"the {policy.provider} upstream did not answer in time ({kind})")
    return UpstreamUnavailable(f"cannot reach the {policy.provider} upstream ({kind})")
