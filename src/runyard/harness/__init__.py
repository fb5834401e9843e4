"""Harness adapters: how each agent CLI is invoked and its output interpreted.

``base`` holds the interface and the registry; each other module is one
harness. Entry points build a :class:`~runyard.harness.base.HarnessRegistry`
with :func:`build_registry` and hand it to the worker.
"""

from __future__ import annotations

from runyard.harness.base import Harness, HarnessRegistry


def build_registry() -> HarnessRegistry:
    from runyard.harness.command import CommandHarness
    from runyard.harness.native import NativeHarness
    from runyard.harness.shell import ShellHarness

    return HarnessRegistry([ShellHarness(), CommandHarness(), NativeHarness()])


__all__ = ["Harness", "HarnessRegistry", "build_registry"]
