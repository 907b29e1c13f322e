"""The bpf(2) system call for cgroup programs, through ctypes (no libbpf, no compiler).

Load a program from raw instructions, attach it to a cgroup (several programs per group
with ``BPF_F_ALLOW_MULTI``; one replaced by another in a single step with
``BPF_F_REPLACE``), find the programs attached to a group, and get a descriptor of a
loaded program by its ID.  ``union bpf_attr`` layouts are from linux/bpf.h; unused
members stay zero, which the kernel requires.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from vzcore.errors import KernelError

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)

PROG_LOAD = 5
PROG_ATTACH = 8
PROG_DETACH = 9
PROG_GET_FD_BY_ID = 13
OBJ_GET_INFO_BY_FD = 15
PROG_QUERY = 16

PROG_TYPE_CGROUP_DEVICE = 15
CGROUP_DEVICE = 6
"""``BPF_CGROUP_DEVICE``, the attach type of device programs."""

F_ALLOW_MULTI = 2
F_REPLACE = 4

_ATTR_SIZE = 128
_LOG_SIZE = 1 << 16


def _call(command: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    result = _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(command), attr,
                           ctypes.c_uint(len(attr)))
    if result < 0:
        raise KernelError(f"bpf {what}", "", ctypes.get_errno())
    return int(result)


def _attr(data: bytes) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data.ljust(_ATTR_SIZE, b"\0"), _ATTR_SIZE)


def load(prog_type: int, insns: bytes, *, name: str, license: str = "GPL",
         expected_attach_type: int = 0) -> int:
    """Load a program; return its descriptor (close-on-exec).  A refusal by the verifier
    raises with the end of the verifier's log in the message."""
    try:
        return _load(prog_type, insns, name, license, expected_attach_type, None)
    except KernelError:
        pass
    # Again with the verifier's log (not the first time: a long program fills any log
    # buffer, which fails the load with ENOSPC even when the program is fine).
    log = ctypes.create_string_buffer(_LOG_SIZE)
    try:
        return _load(prog_type, insns, name, license, expected_attach_type, log)
    except KernelError as exc:
        lines = log.value.decode(errors="replace").strip().splitlines()
        if lines:
            raise KernelError(f"bpf prog load ({lines[-1]})", "", exc.errno) from None
        raise


def _load(prog_type: int, insns: bytes, name: str, license: str, expected_attach_type: int,
          log: ctypes.Array[ctypes.c_char] | None) -> int:
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = _attr(struct.pack(
        "<IIQQIIQII16sII", prog_type, len(insns) // 8, ctypes.addressof(code),
        ctypes.addressof(lic), 0 if log is None else 1, 0 if log is None else len(log),
        0 if log is None else ctypes.addressof(log), 0, 0, name.encode()[:15], 0,
        expected_attach_type))
    return _call(PROG_LOAD, attr, "prog load")


def attach(target_fd: int, prog_fd: int, attach_type: int, flags: int,
           replace_fd: int = 0) -> None:
    """Attach ``prog_fd`` to the cgroup ``target_fd``; with ``F_REPLACE``, in place of the
    program ``replace_fd`` in one step (kernel 5.6 or later)."""
    _call(PROG_ATTACH, _attr(struct.pack("<IIIII", target_fd, prog_fd, attach_type, flags,
                                         replace_fd)), "prog attach")


def detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    """Detach program ``prog_fd`` from the cgroup ``target_fd``."""
    _call(PROG_DETACH, _attr(struct.pack("<III", target_fd, prog_fd, attach_type)), "prog detach")


def query(target_fd: int, attach_type: int) -> list[int]:
    """The IDs of the programs attached to the cgroup ``target_fd`` itself."""
    ids = (ctypes.c_uint32 * 64)()
    attr = _attr(struct.pack("<IIIIQI", target_fd, attach_type, 0, 0, ctypes.addressof(ids), 64))
    _call(PROG_QUERY, attr, "prog query")
    count = struct.unpack_from("<I", attr.raw, 24)[0]
    return list(ids[:count])


def prog_fd_by_id(prog_id: int) -> int | None:
    """A descriptor of loaded program ``prog_id``, or ``None`` when no such program is loaded."""
    try:
        return _call(PROG_GET_FD_BY_ID, _attr(struct.pack("<I", prog_id)), "prog get fd by id")
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def prog_info(prog_fd: int) -> tuple[int, str]:
    """The kernel's ID of the program ``prog_fd`` (stable while it is loaded) and its name."""
    info = ctypes.create_string_buffer(256)
    attr = _attr(struct.pack("<IIQ", prog_fd, len(info), ctypes.addressof(info)))
    _call(OBJ_GET_INFO_BY_FD, attr, "obj get info")
    name = info.raw[64:80].split(b"\0", 1)[0].decode(errors="replace")
    return int(struct.unpack_from("<I", info.raw, 4)[0]), name
