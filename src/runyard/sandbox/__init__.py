"""Sandbox substrates: how a run's processes are isolated and limited.

``base`` defines the substrate interface and the shared supervisor that
spawns, caps output, enforces timeouts and kills whole process trees; each
other module is one substrate. Entry points build the configured substrate
with :func:`build_substrate` and never fall back to a weaker one.
"""

from __future__ import annotations

from runyard.errors import SandboxUnavailable
from runyard.sandbox.base import Substrate
from runyard.sandbox.volumes import HomeVolumes, instance_root
from runyard.settings import Settings


def build_substrate(settings: Settings) -> Substrate:
    """The configured substrate; never a weaker one than asked for."""
    scratch = settings.scratch_dir
    if settings.substrate == "process":
        from runyard.sandbox.process import ProcessSubstrate

        volumes = HomeVolumes(settings.data_dir, scratch, quota=False, mounted=False)
        return ProcessSubstrate(volumes, scratch)
    if settings.substrate == "bwrap":
        from runyard.sandbox.bwrap import BwrapSubstrate
        from runyard.sandbox.cgroups import CgroupManager
        from runyard.sandbox.egress import EgressProxy

        root = instance_root(settings.mount_root, settings.data_dir)
        return BwrapSubstrate(
            HomeVolumes(settings.data_dir, root, quota=settings.disk_quota),
            scratch,
            egress=EgressProxy(allow_private=settings.egress_allow_private),
            cgroups=CgroupManager() if settings.sandbox_cgroups else None,
        )
    raise SandboxUnavailable(f"unknown sandbox substrate {settings.substrate!r}")


__all__ = ["Substrate", "build_substrate"]
