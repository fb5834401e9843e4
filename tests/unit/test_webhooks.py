"""Webhook rules with no I/O: the signature, its verification, the retry delay, URL
validation, the wire bodies, the payload, the private-target policy (with a fake
resolver) and the deliveries cursor."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import ValidationError

from runyard.domain.webhooks import (
    DEFAULT_EVENTS,
    STATUS_EVENTS,
    Delivery,
    RunSnapshot,
    WebhookCreate,
    WebhookPatch,
    body,
    payload,
    retry_delay,
    signature,
    split_url,
    target,
    verify,
)
from runyard.errors import BadRequest
from runyard.secrets_box import SecretBox
from runyard.services.webhooks import (
    REASON_PRIVATE,
    REASON_UNRESOLVABLE,
    WebhookService,
    decode_cursor,
    encode_cursor,
    new_secret,
)
from runyard.store.base import Store

SECRET = "whsec_test-secret"
RAW = b'{"id":"whd_1","type":"run.completed"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + RAW, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1_700_000_000, RAW) == f"t=1700000000,v1={expected}"


def test_verify_accepts_the_signature_within_the_tolerance_only() -> None:
    header = signature(SECRET, 1_700_000_000, RAW)
    assert verify(SECRET, header, RAW, now=1_700_000_100)
    assert verify(SECRET, header, RAW, now=1_699_999_800)
    assert not verify(SECRET, header, RAW, now=1_700_000_301)  # too old: a replay
    assert not verify("whsec_other", header, RAW, now=1_700_000_000)
    assert not verify(SECRET, header, RAW + b" ", now=1_700_000_000)
    assert not verify(SECRET, "v1=" + header.rpartition("v1=")[2], RAW, now=1_700_000_000)
    assert not verify(SECRET, "t=1700000000", RAW, now=1_700_000_000)
    assert not verify(SECRET, "", RAW, now=1_700_000_000)
    # Another signature next to the right one still verifies (secret rotation).
    both = header.replace(",v1=", ",v1=00ff,v1=")
    assert verify(SECRET, both, RAW, now=1_700_000_000)


def test_retry_delay_doubles_is_capped_and_jittered_down_by_at_most_half() -> None:
    assert [retry_delay(n, 10, 3600, 0.0) for n in range(1, 6)] == [10, 20, 40, 80, 160]
    assert retry_delay(20, 10, 3600, 0.0) == 3600
    assert retry_delay(10_000, 10, 3600, 0.0) == 3600  # no overflow
    assert retry_delay(3, 10, 3600, 0.999999) == pytest.approx(20, rel=1e-5)
    for rand in (0.0, 0.25, 0.5, 0.99):
        assert 20 <= retry_delay(3, 10, 3600, rand) <= 40


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/runyard",
        "http://127.0.0.1:8080/x?y=1",
        "https://[2001:db8::1]:8443/hook",
        "https://xn--bcher-kva.example/",
        "http://my_host.internal/",
    ],
)
def test_valid_urls(url: str) -> None:
    assert split_url(url).geturl() == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https://user:pw@example.com/", "user info"),
        ("https://user@example.com/", "user info"),
        ("https://example.com/#frag", "fragment"),
        ("https:///path", "host"),
        ("https://example.com:99999/", "valid URL"),
        ("https://example.com:0/", "port"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\n", "whitespace"),
        ("https://bücher.example/", "ASCII"),
        ("https://-bad-.example/", "ASCII"),
        ("https://example.com/" + "a" * 2048, "at most 2048"),
    ],
)
def test_invalid_urls(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        split_url(url)


def test_target_fills_in_the_default_port() -> None:
    assert target("https://example.com/x") == ("https", "example.com", 443)
    assert target("http://example.com/x") == ("http", "example.com", 80)
    assert target("http://[::1]:9000/x") == ("http", "::1", 9000)


def test_create_body_defaults_dedupes_and_rejects_unknown_fields() -> None:
    made = WebhookCreate.model_validate({"url": "https://example.com/h"})
    assert made.events == sorted(DEFAULT_EVENTS)
    assert made.enabled is True and made.description == ""
    dup = WebhookCreate.model_validate(
        {"url": "https://example.com/h", "events": ["run.failed", "run.failed", "run.cancelled"]}
    )
    assert dup.events == ["run.cancelled", "run.failed"]
    for bad in (
        {"url": "https://example.com/h", "events": []},
        {"url": "https://example.com/h", "events": ["run.exploded"]},
        {"url": "https://example.com/h", "secret": "mine"},
        {"url": "https://example.com/h", "enabled": "yes"},
        {"url": "https://example.com/h", "description": "x" * 501},
        {"url": "mailto:a@example.com"},
        {},
    ):
        with pytest.raises(ValidationError):
            WebhookCreate.model_validate(bad)
    patch = WebhookPatch.model_validate({"enabled": False})
    assert patch.model_fields_set == {"enabled"}
    with pytest.raises(ValidationError):
        WebhookPatch.model_validate({"url": "ftp://example.com"})


def test_status_to_event_mapping() -> None:
    assert STATUS_EVENTS == {
        "running": "run.started",
        "completed": "run.completed",
        "partial": "run.completed",
        "failed": "run.failed",
        "timed_out": "run.failed",
        "cancelled": "run.cancelled",
    }


def _delivery(**run: Any) -> Delivery:
    snapshot = RunSnapshot(
        **{
            "id": "run_1",
            "agent_id": "agent_1",
            "status": "failed",
            "source": "API",
            "created_at": 1_700_000_000_000,
            "started_at": 1_700_000_001_000,
            "completed_at": 1_700_000_002_500,
            "error_code": "harness_failed",
            "error_message": "exit 3",
            "error_retryable": False,
            **run,
        }
    )
    return Delivery(
        id="whd_1",
        seq=1,
        webhook_id="wh_1",
        workspace_id="ws_1",
        event_type="run.failed",
        status="pending",
        attempts=0,
        created_at=1_700_000_002_600,
        run=snapshot,
    )


def test_payload_shape_and_bytes() -> None:
    d = _delivery()
    assert payload(d) == {
        "id": "whd_1",
        "type": "run.failed",
        "createdAt": "2023-11-14T22:13:22.600Z",
        "data": {
            "run": {
                "id": "run_1",
                "agentId": "agent_1",
                "status": "failed",
                "source": "API",
                "createdAt": "2023-11-14T22:13:20.000Z",
                "startedAt": "2023-11-14T22:13:21.000Z",
                "completedAt": "2023-11-14T22:13:22.500Z",
                "error": {"code": "harness_failed", "message": "exit 3", "retryable": False},
            }
        },
    }
    assert json.loads(body(d)) == payload(d)
    assert body(d) == body(d) and b", " not in body(d) and b": " not in body(d)  # compact
    assert payload(_delivery(error_code=None))["data"]["run"]["error"] is None
    assert body(_delivery(error_message="caf\u00e9")).isascii()


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a.startswith("whsec_") and a != b
    assert len(a) == len("whsec_") + 43  # 32 bytes, URL-safe base64 without padding


def _service(addresses: dict[str, list[str]], allow_private: bool = False) -> WebhookService:
    def resolve(host: str, port: int) -> list[str]:
        if host not in addresses:
            raise OSError("Name or service not known")
        return addresses[host]

    return WebhookService(
        cast(Store, None), SecretBox(os.urandom(32)), allow_private=allow_private, resolve=resolve
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/h",
        "http://localhost/h",
        "http://10.1.2.3/h",
        "http://[::1]/h",
        "http://[::ffff:192.168.0.1]/h",
        "http://169.254.169.254/latest",
        "http://0.0.0.0/h",
        "http://224.0.0.1/h",
        "http://240.0.0.1/h",
        "http://100.64.0.1/h",
        "http://mixed.example/h",
    ],
)
def test_private_targets_are_refused_with_a_stable_reason(url: str) -> None:
    svc = _service({"localhost": ["127.0.0.1"], "mixed.example": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(BadRequest) as caught:
        svc.check_target(url)
    assert caught.value.data["reason"] == REASON_PRIVATE
    assert caught.value.data["field"] == "url"


def test_public_targets_pass_and_unresolvable_hosts_are_refused() -> None:
    svc = _service({"hooks.example": ["93.184.216.34", "2606:2800:220:1::1"]})
    svc.check_target("https://hooks.example/h")
    svc.check_target("https://93.184.216.34/h")
    with pytest.raises(BadRequest) as caught:
        svc.check_target("https://nowhere.example/h")
    assert caught.value.data["reason"] == REASON_UNRESOLVABLE


def test_allowing_private_targets_still_refuses_link_local_and_metadata() -> None:
    svc = _service({"localhost": ["127.0.0.1"]}, allow_private=True)
    svc.check_target("http://localhost:9000/h")
    svc.check_target("http://10.1.2.3/h")
    for url in ("http://169.254.169.254/", "http://[fe80::1]/", "http://0.0.0.0/"):
        with pytest.raises(BadRequest):
            svc.check_target(url)


def test_delivery_cursor_round_trips_and_rejects_garbage() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ("", "!!!", "ZDE6", "ZDE6LTE", "YTE6MTI"):
        with pytest.raises(BadRequest):
            decode_cursor(bad)


def test_the_documented_receiver_check_agrees_with_the_signature() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "webhooks.md").read_text()
    code = doc.split("## Verifying the signature", 1)[1].split("```python\n", 1)[1]
    namespace: dict[str, Any] = {}
    exec(code.split("```", 1)[0], namespace)
    check = namespace["verify_runyard_signature"]
    header = signature(SECRET, int(time.time()), RAW)
    assert check(SECRET, header, RAW) is True
    assert check("whsec_other", header, RAW) is False
    assert check(SECRET, header, RAW + b"x") is False
    assert check(SECRET, signature(SECRET, int(time.time()) - 3600, RAW), RAW) is False
