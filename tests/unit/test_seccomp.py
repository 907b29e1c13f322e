"""The seccomp filter generator, checked by interpreting the BPF it emits."""

from __future__ import annotations

import errno
import sys

import pytest

from vzcore.linux import seccomp
from vzcore.linux.seccomp import (
    AUDIT_ARCH,
    RET_ALLOW,
    RET_ERRNO,
    SYSCALLS,
    ArgCheck,
    ArgRule,
    Insn,
    deny_filter,
)

DENIED = {"init_module": errno.EPERM, "keyctl": errno.ENOSYS, "iopl": errno.EPERM}


def run(program: list[Insn], arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """A classic-BPF interpreter for the instructions the generator uses; ``args`` are
    the system call's (64-bit) arguments, laid out as in ``struct seccomp_data``."""
    data = {0: nr & 0xFFFFFFFF, 4: arch}
    for i, value in enumerate((*args, 0, 0, 0, 0, 0, 0)[:6]):
        low, high = value & 0xFFFFFFFF, value >> 32
        data[16 + 8 * i], data[16 + 8 * i + 4] = (low, high) if sys.byteorder == "little" else (high, low)
    acc, pc = 0, 0
    while True:
        insn = program[pc]
        assert 0 <= insn.jt <= 255 and 0 <= insn.jf <= 255
        if insn.code == 0x20:
            acc = data[insn.k]
        elif insn.code == 0x54:
            acc &= insn.k
        elif insn.code == 0x15:
            pc += insn.jt if acc == insn.k else insn.jf
        elif insn.code == 0x35:
            pc += insn.jt if acc >= insn.k else insn.jf
        elif insn.code == 0x05:
            pc += insn.k
        elif insn.code == 0x06:
            return insn.k
        else:
            raise AssertionError(f"unexpected opcode {insn.code:#x}")
        pc += 1


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_denied_calls_get_their_errno_on_every_abi(machine: str) -> None:
    program = deny_filter(DENIED, machine)
    for arch in seccomp.ARCHES_OF_HOST[machine]:
        for name, error in DENIED.items():
            number = SYSCALLS[name].get(arch)
            if number is not None:
                assert run(program, AUDIT_ARCH[arch], number) == RET_ERRNO | error, (arch, name)
        assert run(program, AUDIT_ARCH[arch], 39) == RET_ALLOW  # getpid / others allowed


def test_x32_and_unknown_abis_are_refused() -> None:
    program = deny_filter(DENIED, "x86_64")
    assert run(program, AUDIT_ARCH["x86_64"], 0x40000000 | 39) == RET_ERRNO | errno.EPERM
    assert run(program, 0x40000028, 39) == RET_ERRNO | errno.EPERM  # 32-bit ARM on x86_64


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown system call"):
        deny_filter({"no_such_call": errno.EPERM}, "x86_64")


IOCTL = {"x86_64": 16, "i386": 54, "aarch64": 29}
RULES = [
    ArgRule("ioctl", errno.EPERM, [ArgCheck(1, [0xC0045877, 0xC0045878])]),
    ArgRule("mknodat", errno.EACCES, [ArgCheck(2, [0o060000], mask=0o170000)]),
    ArgRule("mknodat", errno.EPERM, [ArgCheck(2, [0o020000], mask=0o170000),
                                     ArgCheck(3, [0x103, 0x105], negate=True)]),
]


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_argument_rules_match_only_their_values(machine: str) -> None:
    program = deny_filter(DENIED, machine, RULES)
    for arch in seccomp.ARCHES_OF_HOST[machine]:
        audit, ioctl, mknodat = AUDIT_ARCH[arch], IOCTL[arch], SYSCALLS["mknodat"][arch]
        assert run(program, audit, ioctl, (3, 0xC0045877)) == RET_ERRNO | errno.EPERM
        assert run(program, audit, ioctl, (3, 0xC0045878)) == RET_ERRNO | errno.EPERM
        # The kernel reads the request as 32 bits: high bits must not get past the rule.
        assert run(program, audit, ioctl, (3, 0xFFFF_FFFF_C004_5877)) == RET_ERRNO | errno.EPERM
        assert run(program, audit, ioctl, (3, 0x5401)) == RET_ALLOW  # TCGETS
        block = 0o060600
        assert run(program, audit, mknodat, (-100, 0, block, 0x700)) == RET_ERRNO | errno.EACCES
        chr_ok, chr_other = 0o020666, 0o020600
        assert run(program, audit, mknodat, (-100, 0, chr_ok, 0x103)) == RET_ALLOW
        assert run(program, audit, mknodat, (-100, 0, chr_other, 0x105)) == RET_ALLOW
        assert run(program, audit, mknodat, (-100, 0, chr_other, 0xA00)) == RET_ERRNO | errno.EPERM
        assert run(program, audit, mknodat, (-100, 0, 0o010644, 0xA00)) == RET_ALLOW  # a FIFO
        for name, error in DENIED.items():  # the plain denies still hold after the rules
            number = SYSCALLS[name].get(arch)
            if number is not None:
                assert run(program, audit, number) == RET_ERRNO | error


def test_argument_values_must_fit_their_mask() -> None:
    with pytest.raises(ValueError, match="within mask"):
        ArgCheck(1, [0o060000 | 1], mask=0o170000)
    with pytest.raises(ValueError, match="32-bit"):
        ArgCheck(1, [1 << 32])


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_privileged_profile_refuses_a_new_mount_namespace_only(machine: str) -> None:
    """unshare/clone with CLONE_NEWNS are refused with EPERM (systemd's cue to go on
    without its mount sandboxing), other namespaces and plain forks are not; clone3, whose
    flags the filter cannot read, is ENOSYS; the default profile keeps all of them."""
    from vzcore_seccomp import policy

    newns, newuts, sigchld = 0x00020000, 0x04000000, 17
    program = deny_filter(policy.denied(True), machine, policy.rules(True))
    default = deny_filter(policy.denied(False), machine, policy.rules(False))
    for arch in seccomp.ARCHES_OF_HOST[machine]:
        audit = AUDIT_ARCH[arch]
        unshare, clone, clone3 = (SYSCALLS[n][arch] for n in ("unshare", "clone", "clone3"))
        assert run(program, audit, unshare, (newns,)) == RET_ERRNO | errno.EPERM
        assert run(program, audit, unshare, (newns | newuts,)) == RET_ERRNO | errno.EPERM
        assert run(program, audit, unshare, (newuts,)) == RET_ALLOW
        assert run(program, audit, clone, (newns | sigchld,)) == RET_ERRNO | errno.EPERM
        assert run(program, audit, clone, (sigchld,)) == RET_ALLOW
        assert run(program, audit, clone3, (0, 88)) == RET_ERRNO | errno.ENOSYS
        assert run(program, audit, SYSCALLS["mount"][arch]) == RET_ERRNO | errno.EPERM
        for number, args in ((unshare, (newns,)), (clone, (newns | sigchld,)), (clone3, (0, 88))):
            assert run(default, audit, number, args) == RET_ALLOW


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_notify_filter_hands_over_only_the_native_abis_calls(machine: str) -> None:
    program = seccomp.notify_filter(("statfs", "sysinfo"), machine)
    native = seccomp.ARCHES_OF_HOST[machine][0]
    for name in ("statfs", "sysinfo"):
        assert run(program, AUDIT_ARCH[native], SYSCALLS[name][native]) == seccomp.RET_USER_NOTIF
    assert run(program, AUDIT_ARCH[native], SYSCALLS["fstatfs"][native]) == RET_ALLOW
    assert run(program, AUDIT_ARCH[native], 0) == RET_ALLOW
    # The stacked deny filter refuses foreign ABIs and x32; this one lets them through.
    assert run(program, 0x12345678, SYSCALLS["statfs"][native]) == RET_ALLOW
    if machine == "x86_64":
        assert run(program, AUDIT_ARCH["i386"], SYSCALLS["statfs"]["i386"]) == RET_ALLOW
        assert run(program, AUDIT_ARCH["x86_64"], seccomp.X32_SYSCALL_BIT | 137) == RET_ALLOW


def test_notify_filter_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown system call"):
        seccomp.notify_filter(("no_such_call",), "x86_64")
