"""Secret values are redacted in every form a run might print them."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from runyard.redaction import Redactor

SECRET = "sk-live-Zq9/+x=&ü%7"


@pytest.mark.parametrize(
    "printed",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
        base64.b64encode(b"x" + SECRET.encode()).decode(),
        base64.b64encode(b"xy" + SECRET.encode() + b"tail").decode(),
        base64.urlsafe_b64encode(b"Authorization: Bearer " + SECRET.encode()).decode(),
    ],
)
def test_every_form_is_redacted(printed: str) -> None:
    redactor = Redactor([("OPENAI_API_KEY", SECRET)])
    out = redactor.text(f"before {printed} after")
    assert out is not None and "[REDACTED:OPENAI_API_KEY]" in out
    assert printed not in out
    assert SECRET not in out


def test_unrelated_text_and_short_values_are_left_alone() -> None:
    redactor = Redactor([("A", SECRET), ("TINY", "ab")])
    assert redactor.text("nothing to see, ab ab") == "nothing to see, ab ab"
    assert redactor.texts(["x", SECRET]) == ["x", "[REDACTED:A]"]
    assert redactor.text(None) is None
    assert not Redactor([])
