"""System calls Python's ``os`` module lacks (on 3.11), through ctypes.

Only numbers for x86_64 and aarch64 are listed; calls go through ``syscall(2)`` where glibc
has no wrapper.
"""

from __future__ import annotations

import ctypes
import os

from vzcore.errors import KernelError

# The C library the interpreter already has loaded; find_library() would run ldconfig.
_libc = ctypes.CDLL(None, use_errno=True)

_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "pidfd_send_signal": 424, "openat2": 437, "close_range": 436,
               "capget": 125, "capset": 126, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "pidfd_send_signal": 424, "openat2": 437, "close_range": 436,
                "capget": 90, "capset": 91, "seccomp": 277},
}
_NUMBERS = _SYSCALLS.get(os.uname().machine, _SYSCALLS["x86_64"])


def check(result: int, operation: str, target: str = "") -> int:
    """Raise :class:`KernelError` with errno when a libc call returned -1."""
    if result == -1:
        raise KernelError(operation, target, ctypes.get_errno())
    return result


def syscall(name: str, *args: object) -> int:
    """``syscall(SYS_name, args...)``; returns the raw result (-1 and errno on failure)."""
    return int(_libc.syscall(ctypes.c_long(_NUMBERS[name]), *args))


def syscall_number(number: int, *args: int) -> int:
    """A raw ``syscall(number, args...)`` (for probes and tests of filters)."""
    return int(_libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args)))


STATX_ATTR_MOUNT_ROOT = 0x2000
_AT_STATX_DONT_SYNC = 0x4000
_AT_NO_AUTOMOUNT = 0x800
_STATX_BUFFER = 256  # struct statx is 256 bytes


def mount_root(path: str) -> bool | None:
    """Whether ``path`` is the root of a mount (``statx``'s ``STATX_ATTR_MOUNT_ROOT``,
    Linux 5.8); ``None`` when the kernel or the C library cannot tell.  Raises
    ``OSError`` as ``stat`` would (``FileNotFoundError`` for a missing path)."""
    function = getattr(_libc, "statx", None)
    if function is None:
        return None
    buffer = ctypes.create_string_buffer(_STATX_BUFFER)
    flags = _AT_STATX_DONT_SYNC | _AT_NO_AUTOMOUNT  # ask, never trigger a mount or a sync
    if function(ctypes.c_int(-100), path.encode(), ctypes.c_int(flags),
                ctypes.c_uint(0), buffer) == -1:  # AT_FDCWD, no fields: attributes come anyway
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), path)
    attributes = int.from_bytes(buffer.raw[8:16], "little")
    supported = int.from_bytes(buffer.raw[56:64], "little")
    if not supported & STATX_ATTR_MOUNT_ROOT:
        return None
    return bool(attributes & STATX_ATTR_MOUNT_ROOT)


def unshare(flags: int) -> None:
    check(_libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


def setns(fd: int, nstype: int) -> None:
    check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", f"fd {fd}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    result = _libc.mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        ctypes.c_ulong(flags),
        data.encode() if data is not None else None,
    )
    check(result, f"mount {fstype or ''} {source or ''} on".replace("  ", " "), target)


def umount2(target: str, flags: int) -> None:
    check(_libc.umount2(target.encode(), ctypes.c_int(flags)), "umount", target)


def pivot_root(new_root: str, put_old: str) -> None:
    check(syscall("pivot_root", new_root.encode(), put_old.encode()), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
            ctypes.c_ulong(arg4), ctypes.c_ulong(arg5),
        ),
        "prctl",
        str(option),
    )


def sethostname(name: str) -> None:
    raw = name.encode()
    check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname", name)


def close_range_cloexec(first: int) -> None:
    """Mark every descriptor from ``first`` up close-on-exec (``CLOSE_RANGE_CLOEXEC``)."""
    close_range_cloexec_flag = 1 << 2
    if syscall("close_range", ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF),
               ctypes.c_uint(close_range_cloexec_flag)) == -1:
        # Kernels before 5.11: walk /proc/self/fd instead.
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= first:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    check(syscall("pidfd_send_signal", ctypes.c_int(pidfd), ctypes.c_int(sig), None,
                  ctypes.c_uint(0)), "pidfd_send_signal", str(sig))
