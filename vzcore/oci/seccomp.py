"""OCI's seccomp profile (``linux.seccomp``) compiled into a classic-BPF filter, installed
with vzcore's own mechanism (:func:`vzcore.linux.seccomp.install`, the seccomp plugin's).

The program: the architecture word picks a block per architecture the profile names (and
this host runs: x86_64 and its i386 compat ABI); an architecture it does not name gets
the default action, as does the x32 ABI.  Each block is a chain of rules, in the
profile's order, each ``syscall == N && every argument condition -> action``; the first
rule that matches decides, else the default action.  Every jump is local to its rule
(classic BPF's conditional jumps reach 255 instructions), so the chain may be long.
Argument conditions compare all 64 bits (the high and the low word).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from typing import Any

from vzcore.errors import VzError
from vzcore.linux.seccomp import AUDIT_ARCH, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, X32_SYSCALL_BIT, Insn
from vzcore.oci.syscalls import TABLES

LD_W_ABS, JEQ_K, JGT_K, JGE_K, JSET_K, JA, RET_K = 0x20, 0x15, 0x25, 0x35, 0x45, 0x05, 0x06
ALU_AND_K = 0x54
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
MAX_INSNS = 4096

OCI_ARCHES = {"SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X86": "i386", "SCMP_ARCH_X32": "x32",
              "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_ARM": "arm"}
HOST_ARCHES = {"x86_64": ("x86_64", "i386")}
OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
       "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
FLAGS = ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
           "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_LOG")


def _refuse(field: str, why: str) -> VzError:
    return VzError(f"config.json: linux.seccomp.{field}: {why}; vzcore-oci refuses rather "
                   "than ignore it", exit_code=21)


def check(profile: Mapping[str, Any]) -> None:
    """Refuse what the compiler does not do, by field (before anything is made)."""
    if profile.get("listenerPath") or profile.get("listenerMetadata"):
        raise _refuse("listenerPath", "seccomp user notification is not supported")
    for flag in profile.get("flags") or []:
        if flag not in FLAGS:
            raise _refuse("flags", f"flag {flag!r} is not supported")
    _action(profile.get("defaultAction") or "", "defaultAction", profile.get("defaultErrnoRet"))
    for arch in profile.get("architectures") or []:
        if arch not in OCI_ARCHES:
            raise _refuse("architectures", f"unknown architecture {arch!r}")
    for index, rule in enumerate(profile.get("syscalls") or []):
        _action(rule.get("action") or "", f"syscalls[{index}].action", rule.get("errnoRet"))
        for arg in rule.get("args") or []:
            if arg.get("op") not in OPS:
                raise _refuse(f"syscalls[{index}].args", f"unknown operator {arg.get('op')!r}")
            if not 0 <= int(arg.get("index", -1)) <= 5:
                raise _refuse(f"syscalls[{index}].args", "an argument index is 0 to 5")


def _action(name: str, field: str, errno_ret: Any) -> int:
    if name not in ACTIONS:
        raise _refuse(field, f"action {name!r} is not supported")
    if name == "SCMP_ACT_ALLOW":
        return RET_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return RET_ERRNO | (int(errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return RET_TRACE | (int(errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return RET_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return RET_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return RET_TRAP
    return RET_LOG


def _arg_words(index: int) -> tuple[int, int]:
    """Offsets of the low and high words of argument ``index`` in ``seccomp_data``
    (little-endian: x86)."""
    low = 16 + 8 * index
    return low, low + 4


def _condition(arg: Mapping[str, Any], fail: str) -> list[tuple[Insn | None, str | None, str | None]]:
    """Instructions that fall through when the condition holds and jump to ``fail``
    otherwise; jumps are symbolic (resolved by :func:`_assemble`)."""
    low_off, high_off = _arg_words(int(arg["index"]))
    value = int(arg.get("value") or 0) & 0xFFFFFFFFFFFFFFFF
    two = int(arg.get("valueTwo") or 0) & 0xFFFFFFFFFFFFFFFF
    op = arg["op"]
    v_hi, v_lo = value >> 32, value & 0xFFFFFFFF
    out: list[tuple[Insn | None, str | None, str | None]] = []

    def ld(offset: int) -> None:
        out.append((Insn(LD_W_ABS, 0, 0, offset), None, None))

    def jump(code: int, k: int, true: str | None, false: str | None) -> None:
        out.append((Insn(code, 0, 0, k), true, false))

    if op == "SCMP_CMP_MASKED_EQ":
        m_hi, m_lo = value >> 32, value & 0xFFFFFFFF
        t_hi, t_lo = two >> 32, two & 0xFFFFFFFF
        ld(high_off)
        out.append((Insn(ALU_AND_K, 0, 0, m_hi), None, None))
        jump(JEQ_K, t_hi, None, fail)
        ld(low_off)
        out.append((Insn(ALU_AND_K, 0, 0, m_lo), None, None))
        jump(JEQ_K, t_lo, None, fail)
    elif op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
        ok = "ok" if op == "SCMP_CMP_NE" else None
        ld(high_off)
        jump(JEQ_K, v_hi, None, ok if ok else fail)
        ld(low_off)
        if op == "SCMP_CMP_EQ":
            jump(JEQ_K, v_lo, None, fail)
        else:
            jump(JEQ_K, v_lo, fail, None)
        if ok:
            out.append((None, "label:ok", None))
    else:
        # a > v: hi > v_hi, or hi == v_hi and lo > v_lo (and the like for >=, <, <=)
        ld(high_off)
        if op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
            jump(JGT_K, v_hi, "ok", None)
            jump(JEQ_K, v_hi, None, fail)
            ld(low_off)
            jump(JGT_K if op == "SCMP_CMP_GT" else JGE_K, v_lo, None, fail)
        else:  # LT, LE: not (>= / >)
            jump(JGT_K, v_hi, fail, None)
            jump(JEQ_K, v_hi, None, "ok")
            ld(low_off)
            jump(JGE_K if op == "SCMP_CMP_LT" else JGT_K, v_lo, fail, None)
        out.append((None, "label:ok", None))
    return out


def compile_profile(profile: Mapping[str, Any] | None, machine: str | None = None) -> list[Insn] | None:
    """The filter for ``profile`` on this host (``None`` without a profile)."""
    if not profile:
        return None
    check(profile)
    machine = machine or os.uname().machine
    if machine not in HOST_ARCHES:
        raise _refuse("architectures", f"the compiler has no system call table for {machine}")
    default = _action(profile["defaultAction"], "defaultAction", profile.get("defaultErrnoRet"))
    named = {OCI_ARCHES[a] for a in profile.get("architectures") or []} or {machine}
    arches = [a for a in HOST_ARCHES[machine] if a in named]
    if machine not in arches:
        arches.insert(0, machine)  # the native ABI always (libseccomp adds it too)
    items: list[tuple[Insn | None, str | None, str | None]] = [(Insn(LD_W_ABS, 0, 0, 4), None, None)]
    for number, arch in enumerate(arches):
        skip = f"arch{number + 1}"
        items.append((Insn(JEQ_K, 0, 0, AUDIT_ARCH[arch]), f"in{number}", None))
        items.append((Insn(JA, 0, 0, 0), skip, None))  # a block may be longer than 255
        items.append((None, f"label:in{number}", None))
        items += _arch_block(arch, profile, default, number)
        items.append((None, f"label:{skip}", None))
    items.append((Insn(RET_K, 0, 0, default), None, None))
    program = _assemble(items)
    if len(program) > MAX_INSNS:
        raise _refuse("syscalls", f"the profile compiles to {len(program)} instructions, more "
                      f"than the kernel's {MAX_INSNS}")
    return program


def _arch_block(arch: str, profile: Mapping[str, Any], default: int,
                number: int) -> list[tuple[Insn | None, str | None, str | None]]:
    table = TABLES[arch]
    out: list[tuple[Insn | None, str | None, str | None]] = [(Insn(LD_W_ABS, 0, 0, 0), None, None)]
    if arch == "x86_64":  # the x32 ABI shares the architecture word: never let it through
        out.append((Insn(JGE_K, 0, 0, X32_SYSCALL_BIT), None, f"native-{number}"))
        out.append((Insn(RET_K, 0, 0, default), None, None))
        out.append((None, f"label:native-{number}", None))
    counter = 0
    for rule in profile.get("syscalls") or []:
        action = _action(rule["action"], "syscalls.action", rule.get("errnoRet"))
        args = rule.get("args") or []
        for name in rule.get("names") or ([rule["name"]] if rule.get("name") else []):
            nr = table.get(name)
            if nr is None:
                continue  # a call this ABI does not have: nothing can make it by that name
            counter += 1
            tag = f"{number}-{counter}"
            fail = f"next-{tag}"
            if args:
                out.append((Insn(LD_W_ABS, 0, 0, 0), None, None))
            out.append((Insn(JEQ_K, 0, 0, nr), None, fail))
            for index, arg in enumerate(args):
                local = f"{tag}-{index}"
                for insn, true, false in _condition(arg, fail):
                    if insn is None:
                        out.append((None, f"label:ok-{local}", None))
                    else:
                        out.append((insn, _local(true, fail, local), _local(false, fail, local)))
            out.append((Insn(RET_K, 0, 0, action), None, None))
            out.append((None, f"label:{fail}", None))
            if args:
                out.append((Insn(LD_W_ABS, 0, 0, 0), None, None))
    out.append((Insn(RET_K, 0, 0, default), None, None))
    return out


def _local(jump: str | None, fail: str, local: str) -> str | None:
    """A condition's own label (``ok``) made unique to its rule and argument."""
    if jump is None or jump == fail:
        return jump
    return f"{jump}-{local}"


def _assemble(items: Sequence[tuple[Insn | None, str | None, str | None]]) -> list[Insn]:
    """Resolve symbolic jumps; a jump too far for 8 bits goes through a ``JA``."""
    labels: dict[str, int] = {}
    position = 0
    plan: list[tuple[Insn, str | None, str | None]] = []
    for insn, true, false in items:
        if insn is None:
            assert true is not None
            labels[true[len("label:"):]] = position
            continue
        plan.append((insn, true, false))
        position += 1
    program = []
    for index, (insn, true, false) in enumerate(plan):
        if insn.code in (LD_W_ABS, RET_K, ALU_AND_K):
            program.append(insn)
            continue
        if insn.code == JA:
            assert true is not None
            program.append(Insn(JA, 0, 0, labels[true] - index - 1))
            continue
        jt = labels[true] - index - 1 if true else 0
        jf = labels[false] - index - 1 if false else 0
        if not (0 <= jt <= 255 and 0 <= jf <= 255):
            raise _far_jump(index, jt, jf)
        program.append(Insn(insn.code, jt, jf, insn.k))
    return program


def _far_jump(index: int, jt: int, jf: int) -> VzError:
    return VzError(f"seccomp compiler: a conditional jump of {max(jt, jf)} at instruction "
                   f"{index} exceeds 255 (a rule's conditions are too long)")
