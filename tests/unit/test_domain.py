"""Domain rules: the run state machine, names and paths, policies and harness sets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runyard.domain.naming import is_slug, safe_relative_path, slugify
from runyard.domain.policies import (
    HarnessTarget,
    NetworkPolicy,
    RuntimePolicy,
    check_harness_targets,
    default_harness,
)
from runyard.domain.requests import AgentCreate, AgentPatch, ExecRequest, HarnessUpdate
from runyard.domain.states import TERMINAL, TRANSITIONS, RunStatus, can_move, sources_of


def test_terminal_states_have_no_exits() -> None:
    for status in TERMINAL:
        assert status not in TRANSITIONS
        assert not any(can_move(status, target) for target in RunStatus)


def test_every_non_terminal_state_can_end() -> None:
    for status in set(RunStatus) - TERMINAL:
        assert TRANSITIONS[status] & (TERMINAL | {RunStatus.CLAIMED, RunStatus.RUNNING})


def test_sources_match_the_table() -> None:
    assert sources_of(RunStatus.CLAIMED) == (RunStatus.QUEUED,)
    assert set(sources_of(RunStatus.CANCELLED)) == {
        RunStatus.QUEUED,
        RunStatus.CLAIMED,
        RunStatus.RUNNING,
    }
    assert sources_of(RunStatus.COMPLETED) == (RunStatus.RUNNING,)
    assert not can_move(RunStatus.QUEUED, RunStatus.COMPLETED)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Support Agent", "support-agent"),
        ("Support Agent v2", "support-agent-v2"),
        ("  Ünïcode  Name!! ", "unicode-name"),
        ("a" * 80, "a" * 63),
        ("!!!", ""),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert slug == "" or is_slug(slug)


@pytest.mark.parametrize("bad", ["", "/etc", "../x", "a/../../b", "a\x00b", "a\\b", "~root", "x\n"])
def test_unsafe_paths_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        safe_relative_path(bad, "cwd")


def test_safe_paths_normalised() -> None:
    assert safe_relative_path("a//b/./c", "cwd") == "a/b/c"
    assert safe_relative_path(".", "cwd") == "."


def _t(name: str, role: str = "available", enabled: bool = True) -> HarnessTarget:
    return HarnessTarget.model_validate({"harnessName": name, "role": role, "enabled": enabled})


def test_harness_rules() -> None:
    ok = check_harness_targets([_t("shell", "default"), _t("native")])
    assert default_harness(ok) == "shell"
    with pytest.raises(ValueError, match="at most one"):
        check_harness_targets([_t("shell", "default"), _t("native", "default")])
    with pytest.raises(ValueError, match="exactly one"):
        check_harness_targets([_t("shell"), _t("native")])
    with pytest.raises(ValueError, match="only once"):
        check_harness_targets([_t("shell", "default"), _t("shell")])
    with pytest.raises(ValidationError, match="unknown harness"):
        HarnessUpdate.model_validate(
            {"harnessTargets": [{"harnessName": "nope", "role": "default"}]}
        )
    assert check_harness_targets([]) == []


def test_policies_reject_unknown_fields_and_modes() -> None:
    with pytest.raises(ValidationError):
        RuntimePolicy.model_validate({"networkPolicy": {"mode": "open"}})
    with pytest.raises(ValidationError):
        RuntimePolicy.model_validate({"resourceLimits": {"memoryMiB": 1}})
    with pytest.raises(ValidationError):
        RuntimePolicy.model_validate({"storagePolicy": {"persistent": True, "extra": 1}})
    with pytest.raises(ValidationError):
        NetworkPolicy.model_validate({"mode": "allowlist", "allowList": ["10.0.0.1"]})
    policy = NetworkPolicy.model_validate({"mode": "allowlist", "allowList": ["PyPI.org."]})
    assert policy.allow_list == ["pypi.org"]


def test_requests() -> None:
    assert AgentCreate.model_validate({"name": "X"}).slug is None
    with pytest.raises(ValidationError):
        AgentCreate.model_validate({"name": "   "})
    with pytest.raises(ValidationError):
        AgentCreate.model_validate({"name": "ok", "slug": "Bad Slug"})
    with pytest.raises(ValidationError, match="changes nothing"):
        AgentPatch.model_validate({})
    with pytest.raises(ValidationError):
        ExecRequest.model_validate({"input": "x", "cwd": "../up"})
    with pytest.raises(ValidationError):
        ExecRequest.model_validate({"input": "x", "timeoutSeconds": 0})
    with pytest.raises(ValidationError):
        ExecRequest.model_validate({"input": "x", "extra": True})
    req = ExecRequest.model_validate({"input": "x", "cwd": "a/./b", "workspace": "w"})
    assert (req.cwd, req.workspace) == ("a/b", "w")
