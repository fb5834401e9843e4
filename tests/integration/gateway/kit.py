"""Helpers for the gateway tests: policies, a client on the session's socket, SSE parsing."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx

from runyard.gateway import Gateway, GatewayPolicy, GatewaySession

KEY = "sk-live-Zq8wK2mVx7Rt4Lp9Nc3Hj6Bd"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def openai_policy(base_url: str, **changes: Any) -> GatewayPolicy:
    fields: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-test",
        "run_id": "run_gw",
        "api_key": KEY,
        "base_url": base_url,
        "allowed_models": frozenset({"gpt-extra"}),
    }
    return GatewayPolicy(**{**fields, **changes})


def anthropic_policy(base_url: str, **changes: Any) -> GatewayPolicy:
    fields: dict[str, Any] = {
        "provider": "anthropic",
        "model": "claude-test",
        "run_id": "run_gw",
        "api_key": KEY,
        "base_url": base_url,
    }
    return GatewayPolicy(**{**fields, **changes})


@asynccontextmanager
async def gateway(
    policy: GatewayPolicy, sock_dir: Path, owner_uid: int | None = None, **options: Any
) -> AsyncIterator[tuple[GatewaySession, httpx.AsyncClient]]:
    """A session on a socket in ``sock_dir`` and a client on it; ``options`` go to ``Gateway``."""
    gw = Gateway(**options)
    path = sock_dir / "gateway.sock"
    session = await gw.open(path, policy, owner_uid)
    client = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(path)), base_url="http://gateway", timeout=30
    )
    try:
        yield session, client
    finally:
        await client.aclose()
        await session.close()
        await gw.aclose()


def sse(text: str) -> list[tuple[str | None, Any]]:
    """(event, data) of every event in an SSE body; data parsed as JSON when it is."""
    out: list[tuple[str | None, Any]] = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            raw = "\n".join(data)
            out.append((name, raw if raw == "[DONE]" else json.loads(raw)))
    return out


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text
        assert KEY[8:20] not in text


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
