"""The OCI seccomp compiler: programs run through a classic-BPF interpreter on made-up
``seccomp_data`` (the kernel's verdicts without installing anything)."""

from __future__ import annotations

import errno
import struct

import pytest

from vzcore.errors import VzError
from vzcore.linux.seccomp import AUDIT_ARCH, RET_ALLOW, RET_ERRNO, Insn
from vzcore.oci import seccomp
from vzcore.oci.syscalls import I386, X86_64

MASK = 0xFFFFFFFF


def run(program: list[Insn], nr: int, args: tuple[int, ...] = (), arch: str = "x86_64") -> int:
    """Interpret ``program`` as the kernel does for one system call."""
    data = struct.pack("=iIQ6Q", nr, AUDIT_ARCH[arch], 0, *(list(args) + [0] * (6 - len(args))))
    a = 0
    pc = 0
    while True:
        insn = program[pc]
        code = insn.code
        if code == seccomp.LD_W_ABS:
            (a,) = struct.unpack_from("=I", data, insn.k)
        elif code == seccomp.ALU_AND_K:
            a &= insn.k
        elif code == seccomp.RET_K:
            return insn.k
        elif code == seccomp.JA:
            pc += insn.k
        else:
            taken = {seccomp.JEQ_K: a == insn.k, seccomp.JGT_K: a > insn.k,
                     seccomp.JGE_K: a >= insn.k, seccomp.JSET_K: bool(a & insn.k)}[code]
            pc += insn.jt if taken else insn.jf
        pc += 1


def profile(**extra: object) -> dict[str, object]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], **extra}


def test_allow_list_with_the_default_errno() -> None:
    program = seccomp.compile_profile(profile(syscalls=[
        {"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]), "x86_64")
    assert program is not None
    assert run(program, X86_64["read"]) == RET_ALLOW
    assert run(program, X86_64["write"]) == RET_ALLOW
    assert run(program, X86_64["mount"]) == RET_ERRNO | errno.ENOSYS
    # the i386 ABI has its own numbers: read is 3 there
    assert run(program, I386["read"], arch="i386") == RET_ALLOW
    assert run(program, X86_64["read"], arch="i386") == RET_ERRNO | errno.ENOSYS
    # the x32 ABI shares the architecture word and is never let through
    assert run(program, X86_64["read"] | 0x40000000) == RET_ERRNO | errno.ENOSYS


def test_argument_conditions_on_64_bits() -> None:
    program = seccomp.compile_profile(profile(syscalls=[
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["lseek"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 2, "value": 1 << 32, "op": "SCMP_CMP_GE"}]},
        {"names": ["pread64"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_LT"}]},
    ]), "x86_64")
    assert program is not None
    nr = X86_64
    denied = RET_ERRNO | errno.ENOSYS
    assert run(program, nr["personality"], (8,)) == RET_ALLOW
    assert run(program, nr["personality"], (8 | 1 << 32,)) == denied  # the high word counts
    assert run(program, nr["clone"], (0x11,)) == RET_ALLOW
    assert run(program, nr["clone"], (0x10000000,)) == denied  # CLONE_NEWUSER
    assert run(program, nr["socket"], (16,)) == RET_ALLOW  # AF_NETLINK: the NE rule fails
    assert run(program, nr["socket"], (2,)) == RET_ERRNO | errno.EACCES
    assert run(program, nr["lseek"], (0, 0, 1 << 32)) == RET_ALLOW
    assert run(program, nr["lseek"], (0, 0, MASK)) == denied
    assert run(program, nr["pread64"], (0, 4)) == RET_ALLOW
    assert run(program, nr["pread64"], (0, 5)) == denied
    assert run(program, nr["pread64"], (0, 1 << 32)) == denied


def test_a_long_profile_stays_within_short_jumps() -> None:
    names = sorted(X86_64)
    program = seccomp.compile_profile(profile(syscalls=[
        {"names": names[:-1], "action": "SCMP_ACT_ALLOW"}]), "x86_64")
    assert program is not None and len(program) > 256
    assert run(program, X86_64[names[0]]) == RET_ALLOW
    assert run(program, X86_64[names[-1]]) == RET_ERRNO | errno.ENOSYS


@pytest.mark.parametrize(("change", "field"), [
    ({"listenerPath": "/run/x.sock"}, "listenerPath"),
    ({"flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}, "flags"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "defaultAction"),
    ({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}, "syscalls[0].args"),
])
def test_what_it_cannot_do_is_refused_by_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(VzError, match=rf"linux\.seccomp\.{field.replace('[', '.').replace(']', '.')}"):
        seccomp.compile_profile(profile(**change), "x86_64")
