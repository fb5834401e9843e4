"""The egress proxy: the only way out of a sandbox under ``allowlist`` or ``allow_all``.

Each run gets its own Unix socket, bound into the sandbox (a bridge inside
listens on 127.0.0.1:3128 and forwards to it) with that run's policy. The
proxy speaks HTTP ``CONNECT`` and absolute-form HTTP requests. It refuses:
hosts not on the allowlist (exact name or ``*.suffix``), IP literals under an
allowlist, and any destination that resolves to an address that is not
globally routable (loopback, private, shared/CGNAT, reserved), unless the
operator allowed private targets; link-local, multicast, unspecified and
cloud metadata addresses (169.254.169.254, 100.100.100.200, fd00:ec2::254)
are refused even then. IPv6 forms that embed an IPv4 address (mapped,
6to4, NAT64) are judged by that IPv4 address. It connects to the address it
checked, so a second DNS answer cannot slip past the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_HEAD = 65_536
Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
)


@dataclass(frozen=True)
class EgressPolicy:
    allow_all: bool
    domains: tuple[str, ...] = ()

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if is_ip(host):
            return self.allow_all
        if self.allow_all:
            return True
        for entry in self.domains:
            if entry.startswith("*."):
                if host.endswith(entry[1:]) and host != entry[2:]:
                    return True
            elif host == entry:
                return True
        return False


@dataclass
class EgressStats:
    allowed: int = 0
    denied: int = 0
    denied_hosts: list[str] = field(default_factory=list)

    def evidence(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "denied": self.denied,
            "deniedHosts": sorted(set(self.denied_hosts))[:20],
        }


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP literal (IPv6 with or without brackets)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _effective(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address really leads to, if it embeds one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip


def address_allowed(address: str, allow_private: bool) -> bool:
    ip = _effective(ipaddress.ip_address(address.split("%", 1)[0]))
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip in METADATA:
        return False
    if allow_private:
        return True
    # Not just "not private": shared address space (100.64.0.0/10, where some
    # clouds serve metadata) is neither private nor global.
    return ip.is_global


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, off the event loop's thread."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _split_hostport(value: str, default_port: int) -> tuple[str, int]:
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return host, int(port) if port else default_port


class EgressProxy:
    """Serves per-run policies on per-run Unix sockets inside the worker's event loop."""

    def __init__(self, allow_private: bool = False, resolver: Resolver | None = None) -> None:
        self._allow_private = allow_private
        self._resolve = resolver or system_resolver

    async def open(
        self, socket_path: Path, policy: EgressPolicy, owner: int | None = None
    ) -> EgressSession:
        stats = EgressStats()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self._serve(reader, writer, policy, stats)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        server = await asyncio.start_unix_server(handle, path=str(socket_path))
        if owner is not None:
            os.chown(socket_path, owner, owner)
        os.chmod(socket_path, 0o600 if owner is not None else 0o666)
        return EgressSession(server, stats)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        policy: EgressPolicy,
        stats: EgressStats,
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise ValueError("request head too large")
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        if method.upper() == "CONNECT":
            host, port = _split_hostport(target, 443)
            forward = b""
        else:
            if not target.lower().startswith("http://"):
                await _reply(writer, 400, "only absolute http:// URLs or CONNECT are proxied")
                return
            authority, _, path = target[7:].partition("/")
            host, port = _split_hostport(authority, 80)
            headers = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith(b"proxy-")]
            headers = [h for h in headers if not h.lower().startswith(b"connection:")]
            forward = (
                f"{method} /{path} {version}\r\n".encode("latin-1")
                + b"\r\n".join([*headers, b"Connection: close"])
                + b"\r\n\r\n"
            )
        address = await self._admit(host.strip("[]"), port, policy)
        if address is None:
            stats.denied += 1
            stats.denied_hosts.append(host)
            await _reply(writer, 403, f"runyard egress policy refuses {host}")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(address, port), timeout=15
            )
        except (OSError, TimeoutError):
            await _reply(writer, 502, f"cannot reach {host}:{port}")
            return
        stats.allowed += 1
        if forward:
            up_writer.write(forward)
        else:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _admit(self, host: str, port: int, policy: EgressPolicy) -> str | None:
        if not host or not policy.host_allowed(host) or not 0 < port < 65536:
            return None
        try:
            addresses = [host] if is_ip(host) else await self._resolve(host, port)
        except OSError:
            return None
        if not addresses or not all(address_allowed(a, self._allow_private) for a in addresses):
            return None
        return addresses[0]


class EgressSession:
    def __init__(self, server: asyncio.Server, stats: EgressStats) -> None:
        self._server = server
        self.stats = stats

    async def close(self) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)


async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (message + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy ``src`` to ``dst`` until EOF, then half-close ``dst``."""
    try:
        while chunk := await src.read(65_536):
            dst.write(chunk)
            await dst.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.write_eof()
