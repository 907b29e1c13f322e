"""seccomp user notification: the supervisor's side of ``SECCOMP_RET_USER_NOTIF``.

A process installs a :func:`vzcore.linux.seccomp.notify_filter` with
``SECCOMP_FILTER_FLAG_NEW_LISTENER`` and hands the returned *listener* descriptor to a
supervisor (:func:`send_listener`, over a Unix socket with ``SCM_RIGHTS``).  Every call the
filter intercepts then waits in the kernel until the supervisor :func:`receive`\\ s it and
answers with :func:`reply` (a result or an errno) or :func:`continue_call` (the kernel runs
the call as if there were no filter).  The caller's memory is read and written through
``/proc/PID/mem`` (:class:`CallerMemory`), opened *before* :func:`id_valid` confirms that the
notification is still pending, so that a PID reused meanwhile is never written to.

Once every copy of a listener is closed, the kernel fails the intercepted calls with
``ENOSYS``; while one copy stays open they wait (interruptibly) for an answer.

Layouts are those of linux/seccomp.h and, for the answers, of x86_64 and aarch64 (where
``long`` is 64 bits): ``struct statfs`` as statfs(2)/fstatfs(2) fill it and
``struct sysinfo``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections.abc import Mapping

import attrs

# linux/seccomp.h: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, ..._resp),
# _IOW('!', 2, __u64)
IOCTL_NOTIF_RECV = 0xC0502100
IOCTL_NOTIF_SEND = 0xC0182101
IOCTL_NOTIF_ID_VALID = 0x40082102
USER_NOTIF_FLAG_CONTINUE = 1

_NOTIF = struct.Struct("=QIIiIQ6Q")  # id, pid, flags, data.nr, data.arch, data.ip, data.args
_RESP = struct.Struct("=QqiI")  # id, val, error, flags

STATFS_SIZE = 120
"""``struct statfs`` (x86_64, aarch64): type, bsize, blocks, bfree, bavail, files, ffree,
fsid (two ints, handled as one 64-bit field), namelen, frsize, flags (all 64-bit), then
``f_spare[4]`` (zero)."""
SYSINFO = struct.Struct("=q3Q6QHH4xQQI4x")
"""``struct sysinfo`` (112 bytes): uptime, loads[3], totalram, freeram, sharedram,
bufferram, totalswap, freeswap, procs, pad, totalhigh, freehigh, mem_unit."""

LISTENER_LINK = "anon_inode:seccomp notify"
"""What ``/proc/self/fd/N`` reads for a listener (how a received descriptor is checked)."""


@attrs.frozen
class Notification:
    """One intercepted call: ``pid`` is the caller's PID as the receiver sees it."""

    id: int
    pid: int
    nr: int
    arch: int
    args: tuple[int, ...]


def receive(listener: int) -> Notification | None:
    """The next pending notification; ``None`` when it went away first (the caller was
    interrupted by a signal: ``ENOENT``)."""
    buffer = bytearray(_NOTIF.size)
    try:
        fcntl.ioctl(listener, IOCTL_NOTIF_RECV, buffer, True)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EINTR):
            return None
        raise
    nid, pid, _flags, nr, arch, _ip, *args = _NOTIF.unpack(buffer)
    return Notification(nid, pid, nr, arch, tuple(args))


def id_valid(listener: int, notification_id: int) -> bool:
    """Whether the notification still waits for an answer (its caller alive and not
    interrupted): check it after opening the caller's ``/proc`` files."""
    try:
        fcntl.ioctl(listener, IOCTL_NOTIF_ID_VALID, struct.pack("=Q", notification_id))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def _send(listener: int, notification_id: int, value: int, error: int, flags: int) -> None:
    try:
        fcntl.ioctl(listener, IOCTL_NOTIF_SEND,
                    bytearray(_RESP.pack(notification_id, value, error, flags)), True)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # the caller went away meanwhile: nobody to answer
            raise


def reply(listener: int, notification_id: int, value: int = 0, error: int = 0) -> None:
    """Answer the call: it returns ``value``, or fails with ``error`` (a positive errno)."""
    _send(listener, notification_id, value, -error if error else 0, 0)


def continue_call(listener: int, notification_id: int) -> None:
    """Let the kernel run the call itself (``SECCOMP_USER_NOTIF_FLAG_CONTINUE``): for calls
    the supervisor does not answer.  Never a security decision: the caller may change
    what a pointer argument points to after the supervisor looked."""
    _send(listener, notification_id, 0, 0, USER_NOTIF_FLAG_CONTINUE)


class CallerMemory:
    """The caller's memory (``/proc/PID/mem``), opened for a notification.

    Use as a context manager; :meth:`open` returns ``None`` when the caller is gone or the
    notification is no longer pending (checked after the open: the open names a PID, the
    check proves it is still the caller's).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def open(cls, listener: int, notification: Notification) -> CallerMemory | None:
        try:
            fd = os.open(f"/proc/{notification.pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return None
        if not id_valid(listener, notification.id):
            os.close(fd)
            return None
        return cls(fd)

    def __enter__(self) -> CallerMemory:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)

    def read_string(self, address: int, limit: int = 4096) -> bytes:
        """The NUL-terminated string at ``address`` (at most ``limit`` bytes), read in
        pieces so that the end of a mapping after the NUL does not fail the read."""
        data = b""
        while len(data) < limit:
            chunk_end = min((address + len(data)) // 256 * 256 + 256, address + limit)
            chunk = os.pread(self.fd, chunk_end - address - len(data), address + len(data))
            if not chunk:
                raise OSError(errno.EFAULT, "unreadable string")
            end = chunk.find(b"\0")
            if end >= 0:
                return data + chunk[:end]
            data += chunk
        raise OSError(errno.ENAMETOOLONG, "string too long")

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at ``address``; ``EFAULT`` when they are not all readable."""
        try:
            data = os.pread(self.fd, size, address)
        except OSError as exc:
            raise OSError(errno.EFAULT, f"cannot read the caller's memory: {exc.strerror}") from None
        if len(data) != size:
            raise OSError(errno.EFAULT, "short read of the caller's memory")
        return data

    def write(self, address: int, data: bytes) -> None:
        """Write ``data`` at ``address``; ``EFAULT`` when it is not writable."""
        try:
            written = os.pwrite(self.fd, data, address)
        except OSError as exc:
            raise OSError(errno.EFAULT, f"cannot write the caller's memory: {exc.strerror}") from None
        if written != len(data):
            raise OSError(errno.EFAULT, "short write to the caller's memory")


def is_listener(fd: int) -> bool:
    """Whether ``fd`` is a seccomp notification descriptor."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == LISTENER_LINK
    except OSError:
        return False


def send_listener(sock: socket.socket, listener: int, message: bytes = b"L") -> bytes:
    """Hand ``listener`` over ``sock`` (``SCM_RIGHTS``) and return the peer's one-line
    answer (``b"OK"`` once it holds the descriptor)."""
    socket.send_fds(sock, [message], [listener])
    return sock.recv(256)


def statfs_struct(fields: Mapping[str, int]) -> bytes:
    """Pack a ``struct statfs`` from its named fields (missing ones are zero)."""
    order = ("type", "bsize", "blocks", "bfree", "bavail", "files", "ffree", "fsid",
             "namelen", "frsize", "flags")
    packed = struct.pack("=11q", *(fields.get(name, 0) for name in order))
    return packed.ljust(STATFS_SIZE, b"\0")


def statfs_fields(data: bytes) -> dict[str, int]:
    """The named fields of a ``struct statfs``."""
    order = ("type", "bsize", "blocks", "bfree", "bavail", "files", "ffree", "fsid",
             "namelen", "frsize", "flags")
    return dict(zip(order, struct.unpack_from("=11q", data), strict=True))


SYSINFO_FIELDS = ("uptime", "load1", "load5", "load15", "totalram", "freeram", "sharedram",
                  "bufferram", "totalswap", "freeswap", "procs", "pad", "totalhigh",
                  "freehigh", "mem_unit")


def sysinfo_struct(fields: Mapping[str, int]) -> bytes:
    """Pack a ``struct sysinfo`` from its named fields (missing ones are zero)."""
    return SYSINFO.pack(*(fields.get(name, 0) for name in SYSINFO_FIELDS))


def sysinfo_fields(data: bytes) -> dict[str, int]:
    """The named fields of a ``struct sysinfo``."""
    return dict(zip(SYSINFO_FIELDS, SYSINFO.unpack_from(data), strict=True))
