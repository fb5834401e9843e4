"""The two clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both inherit every API method from :class:`~runyard.sdk.operations.Operations`
and only say how a request is sent: each drives a plan, sending its requests
over an ``httpx`` client whose transport can be injected (for example
``httpx.ASGITransport(create_app(services))`` to call the app in-process).
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, Self

import httpx

from runyard.errors import RunyardError
from runyard.sdk.core import Document, Done, Plan, advance, parse_response, transport_failure
from runyard.sdk.operations import DEFAULT_TIMEOUT, Operations, _seg
from runyard.sdk.schedules import ScheduleOperations
from runyard.sdk.sse import parse_sse
from runyard.sdk.webhooks import WebhookOperations


class Client(Operations[Document], ScheduleOperations[Document], WebhookOperations[Document]):
    """Blocking client of the native API; methods return the wire documents."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        workspace: str = "default",
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        source: str | None = None,
    ) -> None:
        super().__init__(base_url, api_key, workspace, timeout=timeout, source=source)
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers, transport=transport, timeout=timeout
        )

    def _drive(self, plan: Plan) -> Document:
        step = advance(plan, None)
        while not isinstance(step, Done):
            outcome: Document | RunyardError
            try:
                response = self._http.request(**step.httpx_kwargs(self.timeout))
                outcome = parse_response(response)
            except httpx.HTTPError as exc:
                outcome = transport_failure(exc, self.base_url)
            except RunyardError as err:
                outcome = err
            step = advance(plan, outcome)
        return step.result

    def stream_run_events(
        self, agent: str, run_id: str, *, last_event_id: int | None = None
    ) -> Iterator[Document]:
        """Follow the run's events over SSE (``{seq, type, data, createdAt}`` each).

        The stream ends after the run's terminal status event, or when the
        server's maximum stream duration is reached (resume with the last
        ``seq`` as ``last_event_id``).
        """
        agent_id = self._drive(self._agent_id(agent))["id"]
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        path = f"/v1/agents/{_seg(agent_id)}/runs/{_seg(run_id)}/events"
        try:
            with self._http.stream(
                "GET", path, headers=headers, timeout=httpx.Timeout(self.timeout, read=None)
            ) as response:
                if not response.is_success:
                    response.read()
                    parse_response(response)
                for message in parse_sse(response.iter_lines()):
                    doc = json.loads(message.data)
                    if isinstance(doc, dict):
                        yield doc
        except httpx.HTTPError as exc:
            raise transport_failure(exc, self.base_url) from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(
    Operations[Coroutine[Any, Any, Document]],
    ScheduleOperations[Coroutine[Any, Any, Document]],
    WebhookOperations[Coroutine[Any, Any, Document]],
):
    """Asyncio client of the native API; methods return coroutines of the wire documents."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        workspace: str = "default",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        source: str | None = None,
    ) -> None:
        super().__init__(base_url, api_key, workspace, timeout=timeout, source=source)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers, transport=transport, timeout=timeout
        )

    async def _drive(self, plan: Plan) -> Document:
        step = advance(plan, None)
        while not isinstance(step, Done):
            outcome: Document | RunyardError
            try:
                response = await self._http.request(**step.httpx_kwargs(self.timeout))
                outcome = parse_response(response)
            except httpx.HTTPError as exc:
                outcome = transport_failure(exc, self.base_url)
            except RunyardError as err:
                outcome = err
            step = advance(plan, outcome)
        return step.result

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
