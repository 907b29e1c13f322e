"""seccomp: a small generator of classic-BPF filters that deny system calls by name, or
hand them to a user-space supervisor (:func:`notify_filter`, see
:mod:`vzcore.linux.seccomp_notify`).

The filter checks the calling convention first: system calls of an architecture the
table does not cover (and the x32 ABI on x86_64) are refused with ``EPERM`` as a whole,
so a denied call cannot be reached through another ABI's number.  Then each denied call
returns its errno; then each :class:`ArgRule` (a call refused only for some argument
values, such as ``ioctl(fd, FIFREEZE)``) is checked; everything else is allowed.  Numbers
come from the kernel's ``unistd`` headers for x86_64, i386 (on x86_64 hosts) and aarch64.

Arguments are compared on their low 32 bits only, which is sound for the arguments the
kernel itself truncates to 32 bits or less (an ``ioctl`` request, a ``mknod`` mode or
device number): high bits a caller sets to dodge the filter are ignored by the kernel
too.  Classic BPF cannot follow pointers, so a string argument (a ``mount`` file-system
type) can never be checked.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence

import attrs

from vzcore.errors import KernelError
from vzcore.linux import libc

# classic BPF opcodes
_LD_W_ABS = 0x20
_AND_K = 0x54
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_JA = 0x05

RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000
RET_USER_NOTIF = 0x7FC00000

AUDIT_ARCH = {"x86_64": 0xC000003E, "i386": 0x40000003, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

SYSCALLS: dict[str, dict[str, int]] = {
    # name: x86_64, i386, aarch64 (asm/unistd_64.h, asm/unistd_32.h, asm-generic/unistd.h)
    "init_module": {"x86_64": 175, "i386": 128, "aarch64": 105},
    "delete_module": {"x86_64": 176, "i386": 129, "aarch64": 106},
    "finit_module": {"x86_64": 313, "i386": 350, "aarch64": 273},
    "kexec_load": {"x86_64": 246, "i386": 283, "aarch64": 104},
    "kexec_file_load": {"x86_64": 320, "aarch64": 294},
    "open_by_handle_at": {"x86_64": 304, "i386": 342, "aarch64": 265},
    "bpf": {"x86_64": 321, "i386": 357, "aarch64": 280},
    "perf_event_open": {"x86_64": 298, "i386": 336, "aarch64": 241},
    "userfaultfd": {"x86_64": 323, "i386": 374, "aarch64": 282},
    "keyctl": {"x86_64": 250, "i386": 288, "aarch64": 219},
    "add_key": {"x86_64": 248, "i386": 286, "aarch64": 217},
    "request_key": {"x86_64": 249, "i386": 287, "aarch64": 218},
    "syslog": {"x86_64": 103, "i386": 103, "aarch64": 116},
    "acct": {"x86_64": 163, "i386": 51, "aarch64": 89},
    "swapon": {"x86_64": 167, "i386": 87, "aarch64": 224},
    "swapoff": {"x86_64": 168, "i386": 115, "aarch64": 225},
    "lookup_dcookie": {"x86_64": 212, "i386": 253, "aarch64": 18},
    "iopl": {"x86_64": 172, "i386": 110},
    "ioperm": {"x86_64": 173, "i386": 101},
    "mount": {"x86_64": 165, "i386": 21, "aarch64": 40},
    "umount": {"i386": 22},
    "umount2": {"x86_64": 166, "i386": 52, "aarch64": 39},
    "pivot_root": {"x86_64": 155, "i386": 217, "aarch64": 41},
    "open_tree": {"x86_64": 428, "i386": 428, "aarch64": 428},
    "move_mount": {"x86_64": 429, "i386": 429, "aarch64": 429},
    "fsopen": {"x86_64": 430, "i386": 430, "aarch64": 430},
    "fsconfig": {"x86_64": 431, "i386": 431, "aarch64": 431},
    "fsmount": {"x86_64": 432, "i386": 432, "aarch64": 432},
    "fspick": {"x86_64": 433, "i386": 433, "aarch64": 433},
    "mount_setattr": {"x86_64": 442, "i386": 442, "aarch64": 442},
    "fanotify_init": {"x86_64": 300, "i386": 338, "aarch64": 262},
    "quotactl": {"x86_64": 179, "i386": 131, "aarch64": 60},
    "quotactl_fd": {"x86_64": 443, "i386": 443, "aarch64": 443},
    "unshare": {"x86_64": 272, "i386": 310, "aarch64": 97},
    "clone": {"x86_64": 56, "i386": 120, "aarch64": 220},  # flags: argument 0 on all three
    "clone3": {"x86_64": 435, "i386": 435, "aarch64": 435},
    "ioctl": {"x86_64": 16, "i386": 54, "aarch64": 29},
    "mknod": {"x86_64": 133, "i386": 14},
    "mknodat": {"x86_64": 259, "i386": 297, "aarch64": 33},
    # intercepted (vzcore.linux.seccomp_notify), never denied
    "statfs": {"x86_64": 137, "i386": 99, "aarch64": 43},
    "fstatfs": {"x86_64": 138, "i386": 100, "aarch64": 44},
    "sysinfo": {"x86_64": 99, "i386": 116, "aarch64": 179},
}

ARCHES_OF_HOST = {"x86_64": ("x86_64", "i386"), "aarch64": ("aarch64",)}


@attrs.frozen
class Insn:
    """One classic-BPF instruction (``struct sock_filter``)."""

    code: int
    jt: int
    jf: int
    k: int

    def pack(self) -> bytes:
        return struct.pack("=HBBI", self.code, self.jt, self.jf, self.k)


def _int_tuple(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


@attrs.frozen
class ArgCheck:
    """``(argument & mask) in values`` on the low 32 bits of argument ``arg`` (0-5);
    ``negate`` turns it into ``not in``."""

    arg: int = attrs.field(validator=attrs.validators.in_(range(6)))
    values: tuple[int, ...] = attrs.field(converter=_int_tuple)
    mask: int = 0xFFFFFFFF
    negate: bool = False

    @values.validator
    def _check_values(self, _attribute: object, values: tuple[int, ...]) -> None:
        if not values or any(not 0 <= v <= 0xFFFFFFFF or v & ~self.mask for v in values):
            raise ValueError(f"argument {self.arg}: {values!r} are not 32-bit values "
                             f"within mask {self.mask:#x}")


def _check_tuple(checks: Iterable[ArgCheck]) -> tuple[ArgCheck, ...]:
    return tuple(checks)


@attrs.frozen
class ArgRule:
    """Refuse system call ``name`` with ``errno`` when every one of ``checks`` holds."""

    name: str
    errno: int
    checks: tuple[ArgCheck, ...] = attrs.field(converter=_check_tuple)


def deny_filter(denied: Mapping[str, int], machine: str | None = None,
                rules: Sequence[ArgRule] = ()) -> list[Insn]:
    """A filter returning ``errno`` for each denied system call name, and for each call
    matching one of ``rules`` (others allowed).

    Unknown names raise ValueError; a name missing for one ABI (iopl on aarch64) just does
    not exist there.
    """
    arches = _arches(machine)
    _check_names((*denied, *(rule.name for rule in rules)))
    actions = {name: RET_ERRNO | error for name, error in denied.items()}
    return _program({arch: _arch_block(arch, actions, refuse_x32=True) + _rule_blocks(arch, rules)
                     for arch in arches}, RET_ERRNO | errno.EPERM)


def notify_filter(names: Iterable[str], machine: str | None = None) -> list[Insn]:
    """A filter handing each call in ``names`` to a user-space supervisor
    (``SECCOMP_RET_USER_NOTIF``) when made through the host's native ABI, allowing
    everything else.

    Meant to be stacked on a :func:`deny_filter` (which refuses foreign ABIs and x32, so
    this one lets them through: the kernel applies the strictest answer of all filters).
    Calls through the 32-bit ABI on x86_64 are not intercepted: their structures differ.
    """
    arches = _arches(machine)[:1]  # the native ABI only
    names = tuple(names)
    _check_names(names)
    actions = dict.fromkeys(names, RET_USER_NOTIF)
    return _program({arch: _arch_block(arch, actions, refuse_x32=False) for arch in arches},
                    RET_ALLOW)


def _arches(machine: str | None) -> tuple[str, ...]:
    machine = machine or os.uname().machine
    arches = ARCHES_OF_HOST.get(machine)
    if arches is None:
        raise ValueError(f"no system call table for {machine}")
    return arches


def _check_names(names: Iterable[str]) -> None:
    for name in names:
        if name not in SYSCALLS:
            raise ValueError(f"unknown system call {name!r}")


def _program(blocks_of: Mapping[str, list[Insn]], other_abi: int) -> list[Insn]:
    """Dispatch on ``seccomp_data.arch`` to each ABI's block (which ends allowing what it
    did not decide); any other ABI gets ``other_abi``."""
    blocks = [[*block, Insn(_RET_K, 0, 0, RET_ALLOW)] for block in blocks_of.values()]
    # Layout: load arch; per ABI a (jeq arch, ja block) pair; the other ABIs' answer; blocks.
    dispatch: list[Insn] = [Insn(_LD_W_ABS, 0, 0, 4)]  # seccomp_data.arch
    first_block = 1 + 2 * len(blocks) + 1
    for i, arch in enumerate(blocks_of):
        start = first_block + sum(len(b) for b in blocks[:i])
        ja_index = len(dispatch) + 1
        dispatch += [Insn(_JEQ_K, 0, 1, AUDIT_ARCH[arch]), Insn(_JA, 0, 0, start - ja_index - 1)]
    dispatch.append(Insn(_RET_K, 0, 0, other_abi))
    return dispatch + [insn for block in blocks for insn in block]


def _arch_block(arch: str, actions: Mapping[str, int], refuse_x32: bool) -> list[Insn]:
    """Return ``actions[name]`` for each listed call of ``arch``."""
    block = [Insn(_LD_W_ABS, 0, 0, 0)]  # seccomp_data.nr
    if arch == "x86_64":  # the x32 ABI shares the architecture value
        x32 = RET_ERRNO | errno.EPERM if refuse_x32 else RET_ALLOW
        block += [Insn(_JGE_K, 0, 1, X32_SYSCALL_BIT), Insn(_RET_K, 0, 0, x32)]
    for name, action in sorted(actions.items()):
        number = SYSCALLS[name].get(arch)
        if number is not None:
            block += [Insn(_JEQ_K, 0, 1, number), Insn(_RET_K, 0, 0, action)]
    return block


Target = int | str | None


def _arg_offset(arg: int) -> int:
    """Offset of argument ``arg``'s low 32 bits in ``struct seccomp_data``."""
    return 16 + 8 * arg + (4 if sys.byteorder == "big" else 0)


def _rule_blocks(arch: str, rules: Sequence[ArgRule]) -> list[Insn]:
    """One block per rule: reload the number, test it, then each check; a failed test
    jumps to the next rule's block (classic BPF jumps only forward, 8-bit jt/jf)."""
    out: list[Insn] = []
    for rule in rules:
        number = SYSCALLS[rule.name].get(arch)
        if number is None:
            continue
        # Jump targets while assembling: None (the next instruction), "next" (the next
        # rule's block) or an absolute index in body.
        body: list[tuple[int, Target, Target, int]] = [(_LD_W_ABS, None, None, 0),
                                                      (_JEQ_K, None, "next", number)]
        for check in rule.checks:
            body.append((_LD_W_ABS, None, None, _arg_offset(check.arg)))
            if check.mask != 0xFFFFFFFF:
                body.append((_AND_K, None, None, check.mask))
            after = len(body) + len(check.values)  # first instruction of the next check
            for i, value in enumerate(check.values):
                last = i == len(check.values) - 1
                if check.negate:  # a listed value fails the check
                    body.append((_JEQ_K, "next", None, value))
                else:  # a listed value passes it; no listed value fails it
                    body.append((_JEQ_K, after, "next" if last else None, value))
        body.append((_RET_K, None, None, RET_ERRNO | rule.errno))
        end = len(body)
        for index, (code, jt, jf, k) in enumerate(body):
            out.append(Insn(code, _target(jt, index, end), _target(jf, index, end), k))
    return out


def _target(jump: Target, index: int, end: int) -> int:
    """The relative jump from instruction ``index`` to ``jump`` (see _rule_blocks)."""
    if jump is None:
        return 0
    destination = end if jump == "next" else int(jump)
    offset = destination - index - 1
    if not 0 <= offset <= 255:
        raise ValueError(f"seccomp rule too long for a classic-BPF jump ({offset})")
    return offset


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8


def install(program: list[Insn], flags: int = 0) -> int:
    """Install ``program`` for the calling thread (and those it creates). Needs
    CAP_SYS_ADMIN in the current user namespace or no_new_privs.  Returns the kernel's
    result: with :data:`SECCOMP_FILTER_FLAG_NEW_LISTENER`, the filter's notification
    descriptor (close-on-exec), else 0."""
    code = b"".join(insn.pack() for insn in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(program), ctypes.cast(buffer, ctypes.c_void_p))
    result = libc.syscall("seccomp", ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags),
                          ctypes.byref(prog))
    if result == -1:
        raise KernelError("install seccomp filter", f"{len(program)} instructions", ctypes.get_errno())
    return int(result)
