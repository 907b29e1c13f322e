"""The cgroup v2 device filter: rules as an eBPF program of type ``CGROUP_DEVICE`` (pure).

cgroup v2 has no devices files: the kernel runs every BPF program attached to a group
(``BPF_CGROUP_DEVICE``) on each mknod and open of a device node by its processes, and
denies unless all of them return 1.  The program is emitted here instruction by
instruction, the way runc and crun do it, so no compiler is needed at run time.  Its
context is ``struct bpf_cgroup_dev_ctx`` (linux/bpf.h)::

    u32 access_type;   /* (access << 16) | type */
    u32 major;
    u32 minor;

with ``type`` 1 block, 2 char and ``access`` the bits 1 mknod, 2 read, 4 write.  The
program loads the four values into registers and tests the rules in order; the first
rule that matches the type and numbers and covers every requested access returns 1;
after the last, it returns 0.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from vzcore_devices.policy import Rule

DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}

# eBPF opcodes (linux/bpf_common.h, linux/bpf.h)
LDX_MEM_W = 0x61        # dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54      # dst = (u32)dst & imm
ALU32_RSH_K = 0x74      # dst = (u32)dst >> imm
ALU64_MOV_K = 0xB7      # dst = imm
ALU64_MOV_X = 0xBF      # dst = src
JNE_K = 0x55            # if dst != imm: pc += off
JNE_X = 0x5D            # if dst != src: pc += off
EXIT = 0x95

R0, R1, R2, R3, R4, R5 = range(6)
"""r1 is the context on entry (then scratch); r2 type, r3 access, r4 major, r5 minor."""

Insn = tuple[int, int, int, int, int]
"""(opcode, dst register, src register, offset, immediate)."""


def _rule(rule: Rule) -> list[Insn]:
    """The instructions of one rule; each test jumps past the rule's end on a mismatch
    (offsets are filled in once the rule's length is known)."""
    tests: list[list[Insn]] = []
    if rule.kind != "a":
        tests.append([(JNE_K, R2, 0, 0, TYPES[rule.kind])])
    mask = sum(ACCESS_BITS[c] for c in rule.access)
    if mask != ACC_MKNOD | ACC_READ | ACC_WRITE:
        # requested & allowed == requested: nothing asked for beyond the rule's access
        tests.append([(ALU64_MOV_X, R1, R3, 0, 0), (ALU32_AND_K, R1, 0, 0, mask),
                      (JNE_X, R1, R3, 0, 0)])
    if rule.major is not None:
        tests.append([(JNE_K, R4, 0, 0, rule.major)])
    if rule.minor is not None:
        tests.append([(JNE_K, R5, 0, 0, rule.minor)])
    body = [insn for test in tests for insn in test] + [(ALU64_MOV_K, R0, 0, 0, 1), (EXIT, 0, 0, 0, 0)]
    out: list[Insn] = []
    for i, (code, dst, src, off, imm) in enumerate(body):
        if code in (JNE_K, JNE_X):
            off = len(body) - i - 1  # to the first instruction after this rule
        out.append((code, dst, src, off, imm))
    return out


def instructions(rules: Sequence[Rule]) -> list[Insn]:
    """The whole program for ``rules`` (allow on the first match, else deny)."""
    prologue: list[Insn] = [
        (LDX_MEM_W, R2, R1, 0, 0), (ALU32_AND_K, R2, 0, 0, 0xFFFF),   # type
        (LDX_MEM_W, R3, R1, 0, 0), (ALU32_RSH_K, R3, 0, 0, 16),       # access
        (LDX_MEM_W, R4, R1, 4, 0),                                    # major
        (LDX_MEM_W, R5, R1, 8, 0),                                    # minor
    ]
    body = [insn for rule in rules for insn in _rule(rule)]
    return prologue + body + [(ALU64_MOV_K, R0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]


def encode(insns: Sequence[Insn]) -> bytes:
    """``struct bpf_insn[]`` as bpf(BPF_PROG_LOAD) reads it."""
    return b"".join(struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
                    for code, dst, src, off, imm in insns)


def run(insns: Sequence[Insn], kind: str, major: int, minor: int, access: str) -> int:
    """Interpret the program for one request, as the kernel would (tests use this to
    compare the program with :func:`vzcore_devices.policy.allowed` without root)."""
    ctx = ((sum(ACCESS_BITS[c] for c in access) << 16) | TYPES[kind], major, minor)
    regs = [0] * 11
    pc = 0
    while True:
        code, dst, src, off, imm = insns[pc]
        pc += 1
        if code == LDX_MEM_W:
            assert src == R1 and off in (0, 4, 8), "the program reads only its context"
            regs[dst] = ctx[off // 4]
        elif code == ALU32_AND_K:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == ALU32_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == ALU64_MOV_K:
            regs[dst] = imm
        elif code == ALU64_MOV_X:
            regs[dst] = regs[src]
        elif code == JNE_K:
            pc += off if regs[dst] != imm else 0
        elif code == JNE_X:
            pc += off if regs[dst] != regs[src] else 0
        elif code == EXIT:
            return regs[R0]
        else:
            raise AssertionError(f"unknown opcode {code:#x}")
