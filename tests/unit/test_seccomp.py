"""The seccomp filter compiles, deterministically, and fails closed without libseccomp."""

from __future__ import annotations

import errno
import fcntl
import os
import platform
from pathlib import Path

import pytest

from runyard.errors import SandboxUnavailable
from runyard.sandbox.bwrap import BwrapSubstrate
from runyard.sandbox.egress import EgressProxy
from runyard.sandbox.seccomp import DENY_RULES, ArgMask, Deny, SeccompFilter
from runyard.sandbox.volumes import HomeVolumes

MISSING = "libseccomp-does-not-exist.so.0"


def test_the_default_filter_builds_once() -> None:
    seccomp = SeccompFilter()
    program = seccomp.program()
    assert program.bpf and len(program.bpf) % 8 == 0  # sock_filter instructions
    assert len(program.bpf) // 8 <= 4096  # the kernel's BPF_MAXINSNS
    assert program.syscalls == len(DENY_RULES) - len(program.skipped)
    assert program.rules > program.syscalls  # argument alternatives are rules of their own
    assert program.evidence() == {
        "applied": True,
        "rules": program.rules,
        "syscalls": program.syscalls,
    }
    assert seccomp.program() is program  # compiled once per instance
    if platform.machine() == "x86_64":
        assert program.skipped == ()  # every name of the list is an x86_64 syscall


def test_the_program_is_deterministic() -> None:
    assert SeccompFilter().program().bpf == SeccompFilter().program().bpf
    fewer = SeccompFilter(DENY_RULES[1:]).program()
    assert fewer.bpf != SeccompFilter().program().bpf


def test_unknown_syscall_names_are_skipped() -> None:
    rules = (Deny("no_such_syscall"), Deny("keyctl"), Deny("also_not_a_syscall", errno.ENOSYS))
    program = SeccompFilter(rules).program()
    assert program.skipped == ("no_such_syscall", "also_not_a_syscall")
    assert (program.rules, program.syscalls) == (1, 1)
    assert program.bpf == SeccompFilter((Deny("keyctl"),)).program().bpf


def test_each_run_gets_its_own_sealed_copy() -> None:
    program = SeccompFilter().program()
    fds = [program.memfd(), program.memfd()]
    try:
        assert fds[0] != fds[1]
        for fd in fds:
            assert os.lseek(fd, 0, os.SEEK_CUR) == 0
            assert os.read(fd, len(program.bpf) + 1) == program.bpf
            assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE
            with pytest.raises(PermissionError):
                os.pwrite(fd, b"\0" * 8, 0)
            assert not os.get_inheritable(fd)  # reaches bwrap only through pass_fds
    finally:
        for fd in fds:
            os.close(fd)


def test_a_missing_library_fails_closed() -> None:
    with pytest.raises(SandboxUnavailable, match="libseccomp"):
        SeccompFilter(library=MISSING).program()


def test_the_bwrap_substrate_refuses_to_run_without_the_filter(tmp_path: Path) -> None:
    substrate = BwrapSubstrate(
        HomeVolumes(tmp_path / "data", tmp_path / "mounts", quota=False, mounted=False),
        tmp_path / "scratch",
        egress=EgressProxy(),
        cgroups=None,
        seccomp=SeccompFilter(library=MISSING),
    )
    with pytest.raises(SandboxUnavailable, match="seccomp"):
        substrate.check()
    with pytest.raises(SandboxUnavailable):  # and on every later check: no run ever starts
        substrate.check()


def _masked(rule: Deny, value: int) -> bool:
    return any(value & when.mask == when.value for when in rule.when)


def test_argument_rules_look_only_at_the_bits_the_kernel_reads() -> None:
    rules = {rule.syscall: rule for rule in DENY_RULES}
    personality, ioctl, clone = rules["personality"], rules["ioctl"], rules["clone"]
    # personality: only PER_LINUX (0) and the query (0xffffffff) pass, high bits ignored.
    for allowed in (0, 0xFFFFFFFF, 1 << 32, 0xFFFFFFFF | 7 << 40):
        assert not _masked(personality, allowed), hex(allowed)
    for denied in (8, 0x0400000, 0x0040000, 0x80000000, 0xFFFFFFFE, 0x0400000 | 1 << 32):
        assert _masked(personality, denied), hex(denied)
    assert all(_masked(personality, 1 << bit) for bit in range(32))
    # ioctl: TIOCSTI and TIOCLINUX whatever the high 32 bits say; other requests pass.
    assert _masked(ioctl, 0x5412) and _masked(ioctl, 0x5412 | 1 << 32)
    assert _masked(ioctl, 0x541C)
    assert not _masked(ioctl, 0x5401)  # TCGETS
    # clone: any flag word with CLONE_NEWUSER.
    assert _masked(clone, 0x10000000 | 0x11) and not _masked(clone, 0x01200011)
    assert all(isinstance(when, ArgMask) for rule in DENY_RULES for when in rule.when)
