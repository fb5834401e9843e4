"""Attacks on the network from inside a bwrap sandbox; each must be refused.

Under ``deny_all``: runyard's own port and PostgreSQL on the host loopback,
DNS, a host abstract Unix socket. Under ``allowlist``: a domain not on the
list, IP literals, the cloud metadata address and the host's loopback
services through the egress proxy (``CONNECT`` and absolute-form requests),
and going around the proxy; the run's stored ``evidence.egress`` counts the
denials. Under ``allow_all``: loopback and metadata in every spelling.
Targets are only the host's loopback, the sandbox's own loopback and the
metadata address, which the proxy refuses before connecting anywhere.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from runyard.sandbox.egress import EgressPolicy, address_allowed
from tests.sandbox.conftest import Agent, Battery, unique

PG_PORT = 5432

# Ask the egress bridge for one thing by hand and print the status code it answered.
RAW = (
    "ask() { printf '%s\\r\\nHost: x\\r\\n\\r\\n' \"$1\""
    " | timeout 10 socat -t 5 - TCP:127.0.0.1:3128 2>/dev/null | head -1 | cut -d' ' -f2; }"
)


@pytest.fixture
def abstract_socket() -> Iterator[str]:
    """A host service on an abstract Unix socket (no file to hide it behind)."""
    name = unique("runyard-attack")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(f"\0{name}")
    server.listen(1)
    yield name
    server.close()


def test_deny_all_reaches_no_host_port(battery: Battery, attacker: Agent) -> None:
    out = battery.sh(
        attacker,
        f"for t in 127.0.0.1/{battery.port} 127.0.0.1/{PG_PORT} ::1/{battery.port}"
        f" localhost/{PG_PORT}; do"
        " (exec 3<>/dev/tcp/${t%/*}/${t#*/}) 2>/dev/null && echo CONNECTED || echo refused;"
        " done; env | grep -ci proxy; ls /run/runyard",
    )
    assert out == "refused\n" * 4 + "0\nscript.sh\n"


def test_deny_all_has_only_loopback_and_no_dns(battery: Battery, attacker: Agent) -> None:
    out = battery.sh(
        attacker,
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ';"
        " getent hosts example.com >/dev/null && echo RESOLVED || echo refused;"
        " getent ahosts runyard.invalid >/dev/null && echo RESOLVED || echo refused;"
        " cat /etc/resolv.conf | wc -c",
    )
    assert out == "lo\nrefused\nrefused\n0\n"


def test_host_abstract_unix_socket_is_unreachable(
    battery: Battery, attacker: Agent, abstract_socket: str
) -> None:
    out = battery.sh(
        attacker,
        "python3 -c 'import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n"
        f'    s.connect("\\0{abstract_socket}")\n    print("CONNECTED")\n'
        'except OSError as e:\n    print("refused", e.errno)\'',
    )
    assert out == "refused 111\n"  # ECONNREFUSED: nothing by that name in its network namespace


def test_allowlist_refuses_everything_not_listed(battery: Battery, allowlisted: Agent) -> None:
    port = battery.port
    out = battery.sh(
        allowlisted,
        f"""{RAW}
c() {{ curl -s -m 10 -o /dev/null -w '%{{http_code}}' "$@"; echo " $?"; }}
p() {{ c --proxy http://127.0.0.1:3128 --noproxy '' "$@"; }}
c https://not-listed.invalid/
c http://not-listed.invalid/
c https://sub.example.com/
c http://169.254.169.254/latest/meta-data/
p https://127.0.0.1:{port}/healthz
p http://127.0.0.1:{port}/healthz
p http://[::1]:{port}/healthz
p https://127.0.0.1:{PG_PORT}/
ask 'CONNECT 127.0.0.1:{PG_PORT} HTTP/1.1'
ask 'CONNECT localhost:{port} HTTP/1.1'
ask 'GET http://127.0.0.1:{port}/healthz HTTP/1.1'
ask 'CONNECT [::ffff:127.0.0.1]:{PG_PORT} HTTP/1.1'
ask 'GET ftp://example.com/ HTTP/1.1'
c --noproxy '*' http://127.0.0.1:{port}/healthz
""",
        timeout=60,
    )
    lines = out.splitlines()
    # Through the proxy: a refused CONNECT (curl exit 56) or the proxy's own 403.
    refused_connect, refused_get = "000 56", "403 0"
    assert lines[:8] == [
        refused_connect,
        refused_get,
        refused_connect,
        refused_get,
        refused_connect,
        refused_get,
        refused_get,
        refused_connect,
    ], out
    assert lines[8:13] == ["403", "403", "403", "403", "400"], out
    # Around the proxy: the sandbox's own loopback has nothing on runyard's port.
    assert lines[13] == "000 7", out


def test_allowlist_denials_are_counted_in_the_stored_evidence(
    battery: Battery, allowlisted: Agent
) -> None:
    resp = battery.exec(
        allowlisted,
        "for h in one.invalid two.invalid 127.0.0.1 169.254.169.254; do"
        " curl -s -m 10 --noproxy '' -o /dev/null https://$h/; done; true",
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    egress = battery.stored(resp.json()["runId"])["evidence"]["egress"]
    assert egress == {
        "allowed": 0,
        "denied": 4,
        "deniedHosts": ["127.0.0.1", "169.254.169.254", "one.invalid", "two.invalid"],
    }


def test_allow_all_still_refuses_loopback_and_metadata(battery: Battery, open_net: Agent) -> None:
    port = battery.port
    targets = [
        f"127.0.0.1:{port}",
        f"127.0.0.1:{PG_PORT}",
        f"localhost:{PG_PORT}",
        f"127.1:{port}",
        f"0.0.0.0:{port}",
        f"0:{port}",
        f"[::1]:{port}",
        f"[::ffff:127.0.0.1]:{port}",
        f"[::ffff:7f00:1]:{PG_PORT}",
        "169.254.169.254:80",
        "[fe80::1]:80",
    ]
    script = RAW + "\n" + "\n".join(f"ask 'CONNECT {t} HTTP/1.1'" for t in targets)
    script += f"\nask 'GET http://127.0.0.1:{port}/healthz HTTP/1.1'"
    resp = battery.exec(open_net, script, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["output"]["text"] == "403\n" * (len(targets) + 1)
    egress = battery.stored(resp.json()["runId"])["evidence"]["egress"]
    assert (egress["allowed"], egress["denied"]) == (0, len(targets) + 1)


@pytest.mark.parametrize(
    "address",
    [
        "100.100.100.200",  # a cloud metadata service in shared address space (100.64/10)
        "100.64.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 spelling of 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 spelling of 127.0.0.1
        "2002:7f00:1::1",  # 6to4 spelling of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 spelling of 169.254.169.254
        "::ffff:10.0.0.1",
        "fd00:ec2::254",
        "192.0.0.1",
        "198.18.0.1",
        "240.0.0.1",
    ],
)
def test_proxy_refuses_addresses_that_lead_back_inside(address: str) -> None:
    """What a name may resolve to: judged without connecting anywhere."""
    assert not address_allowed(address, allow_private=False)


@pytest.mark.parametrize("address", ["100.100.100.200", "fd00:ec2::254", "64:ff9b::a9fe:a9fe"])
def test_metadata_is_refused_even_when_private_targets_are_allowed(address: str) -> None:
    assert not address_allowed(address, allow_private=True)


def test_allowlist_matching_is_exact() -> None:
    policy = EgressPolicy(allow_all=False, domains=("example.com", "*.example.org"))
    for host in ("example.com", "EXAMPLE.com.", "a.example.org", "a.b.example.org"):
        assert policy.host_allowed(host), host
    for host in (
        "evil-example.com",
        "example.com.evil.test",
        "sub.example.com",
        "example.org",
        "evilexample.org",
        "127.0.0.1",
        "[::1]",
    ):
        assert not policy.host_allowed(host), host
