"""The new mount API (Linux 5.2): a mount taken from one mount namespace and placed in another.

``mount --bind`` only binds within the caller's own mount namespace.  ``open_tree`` with
``OPEN_TREE_CLONE`` makes a detached copy of a mount that a descriptor holds; the holder
may then join another mount namespace and attach the copy there with ``move_mount``.
That is how a file served on the host (an lxcfs file) is bound into a CT whose mount
namespace was made before the file existed, or bound anew into a running CT after the
server restarted (lxc/lxcfs#583 describes the same sequence).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from vzcore.errors import KernelError
from vzcore.linux import libc

# The same numbers on x86_64 and aarch64 (the generic table since Linux 5.2).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
CLONE_NEWNS = 0x00020000
MNT_DETACH = 2


def open_tree(path: str, *, dir_fd: int = -100) -> int:
    """A detached copy of the mount at ``path`` (not following a final link); the caller
    closes the descriptor (closing an unattached copy unmounts it)."""
    fd = libc._libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(dir_fd), path.encode(),
                            ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW))
    return libc.check(int(fd), "open_tree", path)


def move_mount_to_fd(tree_fd: int, target_fd: int, where: str) -> None:
    """Attach the detached mount ``tree_fd`` on the object ``target_fd`` (an ``O_PATH``
    descriptor, so nothing is looked up by name again)."""
    result = libc._libc.syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree_fd), b"",
                                ctypes.c_int(target_fd), b"",
                                ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))
    libc.check(int(result), "move_mount onto", where)


def umount_detach(path: str) -> bool:
    """``umount2(path, MNT_DETACH)``; False when the kernel refuses (a mount locked by a
    user namespace, or nothing mounted there)."""
    result = libc._libc.umount2(path.encode(), ctypes.c_int(MNT_DETACH))
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.EPERM):
        return False
    raise KernelError("umount", path, code)


@contextmanager
def mount_namespace_of(pid: int, *, ns_fd: int | None = None) -> Iterator[None]:
    """Run the block in process ``pid``'s mount namespace, then return to this one.

    With ``ns_fd`` (a descriptor of the namespace, or a pidfd of the process: kernel 5.8+)
    the namespace is joined through it and ``pid`` is not used, so a PID reused meanwhile
    can never lead into another process's namespace.

    Only for a single-threaded process (a forked child, or a CT's init before it execs):
    the kernel refuses ``setns`` of a mount namespace to a process sharing its file system
    context.  Joining sets the root and working directory to the namespace's root.
    """
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        cwd = os.open(".", os.O_PATH | os.O_CLOEXEC)
        try:
            if ns_fd is not None:
                libc.setns(ns_fd, CLONE_NEWNS)
            else:
                other = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    libc.setns(other, CLONE_NEWNS)
                finally:
                    os.close(other)
            try:
                yield
            finally:
                libc.setns(own, CLONE_NEWNS)
                os.fchdir(cwd)
        finally:
            os.close(cwd)
    finally:
        os.close(own)


def clone_trees(paths: Iterable[str]) -> dict[str, int]:
    """Detached copies of the mounts at ``paths`` (in the caller's mount namespace), by
    path; on an error the copies made so far are closed."""
    trees: dict[str, int] = {}
    try:
        for path in paths:
            trees[path] = open_tree(path)
    except BaseException:
        close_all(trees.values())
        raise
    return trees


def close_all(fds: Iterable[int]) -> None:
    """Close descriptors, ignoring ones already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
