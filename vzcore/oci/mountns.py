"""A mount namespace an OCI container joins by path: its view is built there, on
``root.path`` as that namespace shows it (runc's rule), so ``delete`` must unmount it there.

``create`` records which namespace it was (device and inode of the namespace file) and
the mount ID found at the root before the start (:func:`record`); ``delete`` unmounts the
root there only while that namespace still exists and something else than the recorded
mount is on top (:func:`cleanup`): what the start mounted, never a mount of the
namespace's own.  The view was made private and below one mount, so one detaching
unmount removes all of it.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable

from vzcore.linux import libc, namespaces
from vzcore.linux.mountapi import umount_detach

STATX_MNT_ID = 0x1000
STATX_MNT_ID_UNIQUE = 0x4000  # Linux 6.8: never reused
AT_SYMLINK_NOFOLLOW = 0x100
_MNT_ID_OFFSET = 144  # struct statx's stx_mnt_id


def mount_id(path: str) -> int:
    """The ID of the mount ``path`` is on (the top one at a mount point); 0 if unknown."""
    function = getattr(libc._libc, "statx", None)
    if function is None:
        return 0
    buffer = ctypes.create_string_buffer(256)
    for mask in (STATX_MNT_ID_UNIQUE, STATX_MNT_ID):
        if function(-100, path.encode(), AT_SYMLINK_NOFOLLOW, mask, buffer) != 0:
            return 0
        got = struct.unpack_from("=I", buffer, 0)[0]
        if got & mask:
            return int(struct.unpack_from("=Q", buffer, _MNT_ID_OFFSET)[0])
    return 0


def _in_namespace(fd: int, function: Callable[[], int]) -> int:
    """``function()`` run in a forked child inside the mount namespace ``fd``; its
    result (a number), or -1 when that failed."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        try:
            os.close(read_fd)
            libc.setns(fd, namespaces.FLAGS["mnt"])
            os.write(write_fd, str(function()).encode())
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(write_fd)
    try:
        data = b""
        while chunk := os.read(read_fd, 64):
            data += chunk
    finally:
        os.close(read_fd)
    _pid, status = os.waitpid(child, 0)
    return int(data) if status == 0 and data else -1


def record(path: str, root: str) -> str:
    """``DEV:INODE:MOUNT_ID`` of the mount namespace file ``path`` and of the mount at
    ``root`` in it now (before the start mounts anything there)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        found = os.fstat(fd)
        before = _in_namespace(fd, lambda: mount_id(root))
    finally:
        os.close(fd)
    return f"{found.st_dev}:{found.st_ino}:{max(before, 0)}"


def cleanup(recorded: str, path: str, root: str) -> None:
    """Unmount what the start mounted at ``root`` in the namespace ``recorded`` names, if
    ``path`` still leads to it; nothing when it is gone (its mounts went with it)."""
    try:
        dev, ino, before = (int(part) for part in recorded.split(":"))
    except ValueError:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        found = os.fstat(fd)
        if (found.st_dev, found.st_ino) != (dev, ino):
            return  # another namespace has that path now

        def undo() -> int:
            now = mount_id(root)
            if now and now != before:
                umount_detach(root)
            return 0

        _in_namespace(fd, undo)
    finally:
        os.close(fd)
