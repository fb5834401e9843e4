"""The seccomp filter every bwrap sandbox runs under, built with libseccomp.

Why: namespaces hide the host from a run but leave it the whole kernel to
call into, and a kernel bug reachable from an unprivileged user namespace is
an escape. Most of that surface no agent workload needs, and much of the
history of such escapes runs through it: the kernel keyring, ``bpf``,
``perf_event_open``, ``userfaultfd`` (the usual way to win kernel races),
``io_uring``, the mount APIs, nested user namespaces. The filter denies
those and allows everything else, so Python, bash, coreutils, git, node,
socat and pip keep working unchanged.

How: ``libseccomp.so.2`` is loaded with ctypes (no Python dependency), the
rules are compiled for the native architecture only and exported as classic
BPF; bwrap installs the program (``--seccomp FD``) right before it execs the
run's program, so its own set-up (mounts, namespaces) is not filtered. A
syscall made through another ABI of the same CPU (i386 ``int $0x80``, x32)
kills the process: the rules describe only the native syscall table, and an
unchecked second table would be a way round them.

Errnos: ``EPERM`` ("not allowed here") for everything, except ``ENOSYS`` for
``io_uring_*`` and ``clone3``, where programs read "this kernel does not
have it" and fall back: libuv and other runtimes to epoll and thread pools,
glibc from ``clone3`` to ``clone``. ``clone3`` is denied as a whole because
its flags sit in a struct in memory that a filter cannot read; ``clone``
passes them in a register, where the rule on ``CLONE_NEWUSER`` sees them.

Argument rules compare only the bits the kernel reads, with masked equality:
``ioctl``'s command and ``personality``'s persona are 32-bit ``unsigned
int``, so a full 64-bit comparison could be dodged by setting a high bit that
the kernel ignores (how flatpak's ``TIOCSTI`` filter was bypassed,
CVE-2019-10063).

Fail closed: if the library cannot be loaded or any step fails,
:class:`~runyard.errors.SandboxUnavailable` is raised and no run starts.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from dataclasses import dataclass
from errno import ENOSYS, EPERM

from runyard.errors import SandboxUnavailable

LIBRARY = "libseccomp.so.2"

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_CMP_MASKED_EQ = 7

CLONE_NEWUSER = 0x10000000  # in clone's first argument (x86_64, aarch64; not s390x)
TIOCSTI = 0x5412  # push a byte into a terminal's input: type commands into its owner's shell
TIOCLINUX = 0x541C  # console tricks (selection paste, which can inject input too)
LOW32 = 0xFFFFFFFF


def _scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


@dataclass(frozen=True)
class ArgMask:
    """Matches when ``args[arg] & mask == value`` (libseccomp's SCMP_CMP_MASKED_EQ)."""

    arg: int
    mask: int
    value: int


@dataclass(frozen=True)
class Deny:
    """Deny ``syscall`` with ``errno``: every call, or only calls matching any of ``when``."""

    syscall: str
    errno: int = EPERM
    when: tuple[ArgMask, ...] = ()


def _personality_rules() -> tuple[ArgMask, ...]:
    """Persona values other than 0 (PER_LINUX) and 0xffffffff (the query).

    A filter rule can compare an argument once, and rules for one syscall are
    alternatives, so "neither all zeros nor all ones" is written as: some bit
    is set while the next one (cyclically) is clear. Any 32-bit value that is
    not constant has such a pair; 0 and 0xffffffff have none. Only the low 32
    bits are looked at, as the kernel does.
    """
    return tuple(ArgMask(0, (1 << i) | (1 << (i + 1) % 32), 1 << i) for i in range(32))


_EPERM_ALL = (
    # the kernel keyring: shared kernel state, a long line of bugs, nothing a run needs
    "keyctl", "add_key", "request_key",
    # loading programs into the kernel, kernel profiling
    "bpf", "perf_event_open", "lookup_dcookie",
    # userfaultfd stretches kernel race windows at will (an exploit's favourite tool)
    "userfaultfd",
    # file handles bypass path lookup (the "shocker" container escape)
    "open_by_handle_at", "name_to_handle_at",
    # the kernel itself, modules, power, swap, accounting, the kernel log
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd",
    # the host's clock
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    # mounts, old and new API
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    # new or other namespaces (bwrap set them up before the filter applies)
    "unshare", "setns",
    # obsolete or host-level: terminals, I/O ports, NUMA placement, fanotify
    "vhangup", "uselib", "ustat", "sysfs", "_sysctl", "iopl", "ioperm",
    "mbind", "migrate_pages", "move_pages", "set_mempolicy", "fanotify_init",
)  # fmt: skip

_ENOSYS_ALL = ("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3")

DENY_RULES: tuple[Deny, ...] = (
    *(Deny(name) for name in _EPERM_ALL),
    *(Deny(name, ENOSYS) for name in _ENOSYS_ALL),
    Deny("clone", when=(ArgMask(0, CLONE_NEWUSER, CLONE_NEWUSER),)),
    Deny("ioctl", when=(ArgMask(1, LOW32, TIOCSTI), ArgMask(1, LOW32, TIOCLINUX))),
    Deny("personality", when=_personality_rules()),
)


@dataclass(frozen=True)
class SeccompProgram:
    """A compiled filter: classic BPF for the native architecture."""

    bpf: bytes
    rules: int  # libseccomp rules added (one per syscall, or per argument alternative)
    syscalls: int  # distinct syscalls with a rule
    skipped: tuple[str, ...]  # names this architecture or libseccomp does not know

    def memfd(self) -> int:
        """A fresh, sealed memfd holding the program, read from its start.

        bwrap reads the fd to its end, and every inherited copy of one open
        file shares the read offset, so each run gets its own.
        """
        fd = os.memfd_create("runyard-seccomp", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, self.bpf)
            seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | fcntl.F_SEAL_WRITE)
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            os.close(fd)
            raise
        return fd

    def evidence(self) -> dict[str, object]:
        return {"applied": True, "rules": self.rules, "syscalls": self.syscalls}


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class SeccompFilter:
    """Compiles ``rules`` with the libseccomp named ``library``, once per instance."""

    def __init__(self, rules: tuple[Deny, ...] = DENY_RULES, library: str = LIBRARY) -> None:
        self._rules = rules
        self._library = library
        self._program: SeccompProgram | None = None

    def program(self) -> SeccompProgram:
        """The compiled program; raises SandboxUnavailable if it cannot be built."""
        if self._program is None:
            self._program = self._compile()
        return self._program

    def _load(self) -> ctypes.CDLL:
        try:
            lib = ctypes.CDLL(self._library, use_errno=True)
            lib.seccomp_init.restype = ctypes.c_void_p
            lib.seccomp_init.argtypes = (ctypes.c_uint32,)
            lib.seccomp_release.restype = None
            lib.seccomp_release.argtypes = (ctypes.c_void_p,)
            lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
            lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
            lib.seccomp_rule_add_array.argtypes = (
                ctypes.c_void_p,
                ctypes.c_uint32,
                ctypes.c_int,
                ctypes.c_uint,
                ctypes.POINTER(_ArgCmp),
            )
            lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        except (OSError, AttributeError) as exc:
            raise SandboxUnavailable(
                f"cannot load {self._library} to build the sandbox's seccomp filter ({exc});"
                " install libseccomp2"
            ) from exc
        return lib

    def _compile(self) -> SeccompProgram:
        lib = self._load()
        ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
        if not ctx:
            raise SandboxUnavailable("seccomp_init failed: cannot build the seccomp filter")
        try:
            rc = lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)
            _check(rc, "set the bad-architecture action")
            added, syscalls, skipped = 0, 0, []
            for rule in self._rules:
                number = int(lib.seccomp_syscall_resolve_name(rule.syscall.encode()))
                if number < 0:  # unknown, or a pseudo number: not on this architecture
                    skipped.append(rule.syscall)
                    continue
                action = _scmp_act_errno(rule.errno)
                for when in rule.when or (None,):
                    if when is None:
                        cmp, count = _ArgCmp(), 0
                    else:
                        cmp, count = _ArgCmp(when.arg, SCMP_CMP_MASKED_EQ, when.mask, when.value), 1
                    rc = lib.seccomp_rule_add_array(ctx, action, number, count, ctypes.byref(cmp))
                    _check(rc, f"add the rule for {rule.syscall}")
                    added += 1
                syscalls += 1
            bpf = _export(lib, ctx)
        finally:
            lib.seccomp_release(ctx)
        if not bpf or len(bpf) % 8:
            raise SandboxUnavailable(f"libseccomp exported an invalid program ({len(bpf)} bytes)")
        return SeccompProgram(bpf, added, syscalls, tuple(skipped))


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise SandboxUnavailable(f"libseccomp could not {what}: {os.strerror(-rc)}")


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("runyard-seccomp-export", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "export the filter")
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)
