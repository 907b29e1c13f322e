"""A minimal FUSE server for one read-only file, speaking the kernel protocol on /dev/fuse.

Each connection is a file system whose root *is* the file (mounted with
``rootmode=100400``): no directories, no lookups.  The content is rendered when the file
is opened (so each ``cat`` sees fresh numbers, as a seq_file in /proc would) and served
from memory until it is released.  Reads bypass the page cache (``FOPEN_DIRECT_IO``),
but ``sendfile``/``splice`` (busybox's cat) always go through it and stop at the file's
size, so the size is reported truly: the content's layout is fixed, so its length is
known without rendering it.  Only the requests such a file receives are answered;
everything else gets ENOSYS, which the kernel remembers and stops asking.

Protocol reference: ``include/uapi/linux/fuse.h`` (we speak 7.31, which every kernel
since 5.4 accepts).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import time
from collections.abc import Callable

IN_HEADER = struct.Struct("<IIQQIIIHH")
OUT_HEADER = struct.Struct("<IiQ")
INIT_IN = struct.Struct("<IIII")
INIT_OUT = struct.Struct("<IIIIHHIIHH32x")
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
ATTR_OUT = struct.Struct("<QII")
OPEN_OUT = struct.Struct("<QIi")
READ_IN = struct.Struct("<QQII")
RELEASE_IN = struct.Struct("<Q")
STATFS_OUT = struct.Struct("<QQQQQIIII24x")

LOOKUP, FORGET, GETATTR, OPEN, READ, STATFS, RELEASE, FLUSH, INIT = 1, 2, 3, 14, 15, 17, 18, 25, 26
INTERRUPT, DESTROY, BATCH_FORGET = 36, 38, 42
NO_REPLY = frozenset({FORGET, INTERRUPT, BATCH_FORGET})

MAJOR, MINOR = 7, 31
FOPEN_DIRECT_IO = 1
ROOT_ID = 1
BUFFER_SIZE = 1 << 17
"""Requests are read whole; the kernel wants room for max_write (4 KiB) plus headers."""

MOUNT_OPTIONS = "rootmode=100400,user_id=0,group_id=0,allow_other,default_permissions"
"""With ``fd=N`` in front: a root-owned regular file, mode 0400, permissions checked by
the kernel (only the CT's root reads it, as on OpenVZ)."""


class Disconnected(Exception):
    """The file system was unmounted (its CT stopped): the connection is gone."""


class FileServer:
    """Serve one read-only file on the FUSE connection ``fd``.

    :param render: returns the file's content; called once per open.
    :param size: the content's length (the same for every rendering).
    :param owner: host (uid, gid) owning the file: the CT's root, which alone may read it.
    """

    def __init__(self, fd: int, render: Callable[[], bytes], size: int,
                 owner: tuple[int, int] = (0, 0)) -> None:
        self.fd = fd
        self.render = render
        self.size = size
        self.owner = owner
        self.handles: dict[int, bytes] = {}
        self.next_handle = 1
        self.started = time.time()

    def close(self) -> None:
        os.close(self.fd)
        self.handles.clear()

    def serve_one(self) -> None:
        """Read and answer one request (the descriptor is readable)."""
        try:
            request = os.read(self.fd, BUFFER_SIZE)
        except InterruptedError:
            return
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOENT:  # the request was interrupted before we read it
                return
            raise Disconnected(str(exc)) from exc
        if len(request) < IN_HEADER.size:
            raise Disconnected("short read")
        _length, opcode, unique, nodeid, _uid, _gid, _pid, _ext, _pad = IN_HEADER.unpack_from(request)
        body = memoryview(request)[IN_HEADER.size:]
        if opcode in NO_REPLY:
            return
        try:
            payload = self.answer(opcode, nodeid, body)
            self.reply(unique, 0, payload)
        except OSError as exc:
            self.reply(unique, -(exc.errno or errno.EIO), b"")
        if opcode == DESTROY:
            raise Disconnected("destroyed")

    def reply(self, unique: int, error: int, payload: bytes) -> None:
        try:
            os.write(self.fd, OUT_HEADER.pack(OUT_HEADER.size + len(payload), error, unique) + payload)
        except OSError as exc:
            if exc.errno == errno.ENOENT:  # the caller gave up (interrupted); nothing to do
                return
            raise Disconnected(str(exc)) from exc

    def answer(self, opcode: int, nodeid: int, body: memoryview) -> bytes:
        """The reply payload of one request; raise OSError(errno) to refuse it."""
        if opcode == INIT:
            _major, _minor, readahead, _flags = INIT_IN.unpack_from(body)
            return INIT_OUT.pack(MAJOR, MINOR, readahead, 0, 0, 0, 4096, 1, 0, 0)
        if opcode == GETATTR:
            return ATTR_OUT.pack(1, 0, 0) + self.attr()
        if opcode == OPEN:
            handle = self.next_handle
            self.next_handle += 1
            self.handles[handle] = self.render()
            return OPEN_OUT.pack(handle, FOPEN_DIRECT_IO, 0)
        if opcode == READ:
            handle, offset, size, _flags = READ_IN.unpack_from(body)
            data = self.handles.get(handle)
            if data is None:
                raise OSError(errno.EBADF, "unknown handle")
            return data[offset:offset + size]
        if opcode == RELEASE:
            (handle,) = RELEASE_IN.unpack_from(body)
            self.handles.pop(handle, None)
            return b""
        if opcode in (FLUSH, DESTROY):
            return b""
        if opcode == STATFS:
            return STATFS_OUT.pack(0, 0, 0, 0, 0, 4096, 255, 4096, 0)
        if opcode == LOOKUP:
            raise OSError(errno.ENOENT, "no such file")
        raise OSError(errno.ENOSYS, "not implemented")

    def attr(self) -> bytes:
        now = int(time.time())
        return ATTR.pack(ROOT_ID, self.size, (self.size + 511) // 512, now, now,
                         int(self.started), 0, 0, 0,
                         stat.S_IFREG | 0o400, 1, *self.owner, 0, 4096, 0)
