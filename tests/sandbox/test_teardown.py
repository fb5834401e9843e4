"""Deleting an agent tears its environment down: the home volume is unmounted and removed."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from runyard.sandbox.volumes import _mounted, instance_root
from tests.conftest import start_up

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="home volumes are mounted as root")


def _wait(check: object, what: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_delete_unmounts_and_removes_the_home(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Mount roots must be reachable by the sandbox uids (tmp_path's parents are 0700).
    mount_root = Path("/run/runyard-test") / uuid.uuid4().hex[:8]
    server = start_up(data, {"RUNYARD_SANDBOX": "bwrap", "RUNYARD_MOUNT_ROOT": str(mount_root)})
    try:
        with server.client() as c:
            agent = c.post("/v1/workspaces/default/agents", json={"name": "Short Lived"}).json()
            agent_id = agent["agent"]["id"]
            done = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "echo kept > ~/f"})
            assert done.status_code == 200, done.text
            home = instance_root(mount_root, data) / "homes" / agent_id
            image = data / "agents" / agent_id / "home.img"
            assert _mounted(home) and image.exists()
            gone = c.request(
                "DELETE",
                "/v1/workspaces/default/agents/short-lived",
                json={"confirmationSlug": "short-lived"},
            )
            assert gone.status_code == 200, gone.text
            _wait(lambda: not (data / "agents" / agent_id).exists(), "the teardown")
            assert not _mounted(home) and not image.exists() and not home.exists()
    finally:
        server.stop()
    assert not any(_mounted(p) for p in (mount_root.rglob("*") if mount_root.exists() else []))
    shutil.rmtree(mount_root, ignore_errors=True)


def test_stopping_runyard_unmounts_the_homes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mount_root = Path("/run/runyard-test") / uuid.uuid4().hex[:8]
    server = start_up(data, {"RUNYARD_SANDBOX": "bwrap", "RUNYARD_MOUNT_ROOT": str(mount_root)})
    try:
        with server.client() as c:
            agent = c.post("/v1/workspaces/default/agents", json={"name": "Kept"}).json()
            agent_id = agent["agent"]["id"]
            done = c.post(f"/v1/agents/{agent_id}/exec", json={"input": "echo x > ~/kept"})
            assert done.status_code == 200, done.text
        home = instance_root(mount_root, data) / "homes" / agent_id
        assert _mounted(home)
    finally:
        server.stop()  # SIGTERM: a graceful stop releases the host's mounts
    assert server.proc.returncode == 0
    assert not _mounted(home)
    assert (data / "agents" / agent_id / "home.img").exists()  # the home itself is kept
    shutil.rmtree(mount_root, ignore_errors=True)
