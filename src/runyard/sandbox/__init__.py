"""Sandbox substrates: how a run's processes are isolated and limited.

``base`` defines the substrate interface and the shared supervisor that
spawns, caps output, enforces timeouts and kills whole process trees; each
other module is one substrate. Entry points build the configured substrate
with :func:`build_substrate` and never fall back to a weaker one.
"""

from __future__ import annotations

from runyard.errors import SandboxUnavailable
from runyard.sandbox.base import Substrate


def build_substrate(name: str) -> Substrate:
    if name == "process":
        from runyard.sandbox.process import ProcessSubstrate

        return ProcessSubstrate()
    raise SandboxUnavailable(f"sandbox substrate {name!r} is not available in this build")


__all__ = ["Substrate", "build_substrate"]
