"""The seccomp filter generator, checked by interpreting the BPF it emits."""

from __future__ import annotations

import errno

import pytest

from vzcore.linux import seccomp
from vzcore.linux.seccomp import AUDIT_ARCH, RET_ALLOW, RET_ERRNO, SYSCALLS, Insn, deny_filter

DENIED = {"init_module": errno.EPERM, "keyctl": errno.ENOSYS, "iopl": errno.EPERM}


def run(program: list[Insn], arch: int, nr: int) -> int:
    """A classic-BPF interpreter for the instructions the generator uses."""
    data = {0: nr & 0xFFFFFFFF, 4: arch}
    acc, pc = 0, 0
    while True:
        insn = program[pc]
        if insn.code == 0x20:
            acc = data[insn.k]
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
