"""Binding lxcfs files over a CT's own: at start in its init, and anew in a running CT.

The CT's mount namespace is copied from the host before ``vz_pre_start`` runs, so the
lxcfs mount that a start may have just made is not in it.  Each file is therefore taken
from the daemon's mount namespace as a detached mount (``open_tree``) and attached in the
CT's (``move_mount``): :mod:`vzcore.linux.mountapi`.  The same sequence, run from vzctl
in each mount namespace of a running CT, replaces the binds of a dead lxcfs by the new
one's (lxc/lxcfs#583).

A file the CT does not have as the kernel's own (masked with /dev/null, or already bound
by another plugin, as the cpu plugin binds /proc/cpuinfo and the CPU list) is left alone.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from vzcore.errors import KernelError, VzError
from vzcore.linux import mountapi, safefs


def _kernel_own(root_fd: int, relative: str) -> bool:
    """Whether ``relative`` under the root is a regular file of the file system mounted on
    its first component (procfs on ``proc``, sysfs on ``sys``), not a bind over it."""
    top = relative.split("/", 1)[0]
    try:
        with safefs.opened(root_fd, relative, os.O_PATH | os.O_NOFOLLOW) as fd:
            st = os.fstat(fd)
        with safefs.opened(root_fd, top, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY) as fd:
            home = os.fstat(fd)
    except (OSError, VzError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_dev == home.st_dev


def _attach(root_fd: int, relative: str, tree: int) -> None:
    with safefs.opened(root_fd, relative, os.O_PATH | os.O_NOFOLLOW) as target:
        mountapi.move_mount_to_fd(tree, target, relative)


def _clone(daemon_pid: int, mountpoint: Path, files: Iterable[str], *,
           ns_fd: int | None = None) -> dict[str, int]:
    """Detached copies of the daemon's files, taken in its mount namespace (joined through
    ``ns_fd`` when given)."""
    with mountapi.mount_namespace_of(daemon_pid, ns_fd=ns_fd):
        return mountapi.clone_trees(str(mountpoint / f) for f in files)


def bind_at_start(root: str, daemon_ns: int, mountpoint: Path, files: Iterable[str]) -> list[str]:
    """In the CT's init, before the root switch: bind the daemon's files over the CT's
    (below ``root``, its host path); returns the files bound.  ``daemon_ns`` is a
    descriptor of the daemon's mount namespace, checked against the record
    (:func:`vzcore_lxcfs.daemon.open_namespace`)."""
    root_fd = safefs.open_root(root)
    try:
        wanted = [f for f in files if _kernel_own(root_fd, f)]
        trees = _clone(-1, mountpoint, wanted, ns_fd=daemon_ns)
        try:
            for f in wanted:
                _attach(root_fd, f, trees[str(mountpoint / f)])
        finally:
            mountapi.close_all(trees.values())
    finally:
        os.close(root_fd)
    return wanted


def _stale(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def rebind_here(daemon_pid: int, mountpoint: Path, target_pid: int, files: Iterable[str]) -> int:
    """In a forked process: in ``target_pid``'s mount namespace, cover every file whose
    bind still points at a dead lxcfs with the daemon's; returns how many were covered.

    Where the old bind may be unmounted (a CT without a user namespace) it is; where the
    kernel locked it (the CT's user namespace owns the mount namespace) the new bind goes
    on top, and lookups see the top one.
    """
    files = list(files)
    trees = _clone(daemon_pid, mountpoint, files)
    covered = 0
    try:
        with mountapi.mount_namespace_of(target_pid):
            root_fd = safefs.open_root("/")
            try:
                for f in files:
                    path = "/" + f
                    if not _stale(path):
                        continue
                    while _stale(path) and mountapi.umount_detach(path):
                        pass
                    _attach(root_fd, f, trees[str(mountpoint / f)])
                    if _stale(path):
                        raise KernelError("bind lxcfs file over", path, errno.ENOTCONN)
                    covered += 1
            finally:
                os.close(root_fd)
    finally:
        mountapi.close_all(trees.values())
    return covered
