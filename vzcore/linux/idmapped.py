"""Idmapped mounts (Linux 5.12): a tree seen with its owners shifted, without a chown.

A user namespace carrying a CT's mapping (inside ``0..65535`` -> host ``N..N+65535``) is
made by a short-lived helper process (:func:`userns_fd`); a detached copy of a directory
(``open_tree(OPEN_TREE_CLONE)``) gets that namespace's mapping (``mount_setattr`` with
``MOUNT_ATTR_IDMAP``): through the copy, a file owned by host 0 on disk is seen as owned
by host ``N``, the CT's root, and a file the CT's root writes is stored as 0.

The helper never outlives its caller: it waits on a pipe whose only writer is the caller,
so it exits at the caller's exit or death (a SIGKILLed vzctl leaves no helper).
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

from vzcore.errors import KernelError
from vzcore.idmap import IdMap
from vzcore.linux import libc, mountapi, userns

SYS_MOUNT_SETATTR = 442  # the generic table: x86_64 and aarch64 alike
MOUNT_ATTR_IDMAP = 0x00100000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def userns_fd(idmap: IdMap) -> int:
    """A descriptor of a new user namespace with ``idmap``'s mapping (the caller closes
    it; the namespace lives as long as a descriptor or mount refers to it)."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper: unshare, say so, wait for the caller to be done (or gone)
        try:
            os.close(ready_r)
            os.close(hold_w)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            try:
                libc.unshare(CLONE_NEWUSER)
            except KernelError as exc:
                os.write(ready_w, str(exc.errno).encode())
            else:
                os.write(ready_w, b"ok")
                os.read(hold_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(hold_r)
    try:
        said = os.read(ready_r, 16)
        if said != b"ok":
            raise KernelError("unshare(CLONE_NEWUSER) for", "an idmapped mount",
                              int(said) if said.isdigit() else 0)
        userns.write_maps(pid, idmap)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(hold_w)  # the helper reads EOF and exits
        os.waitpid(pid, 0)


def clone_idmapped(path: str | os.PathLike[str], ns_fd: int) -> int:
    """A detached copy of the directory ``path`` seen through the user namespace
    ``ns_fd``'s mapping; the caller attaches it (:func:`attach`) or closes it."""
    tree = mountapi.open_tree(os.fspath(path))
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, ns_fd)
        result = libc._libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(tree), b"",
                                    ctypes.c_uint(mountapi.AT_EMPTY_PATH),
                                    ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
        libc.check(int(result), "mount_setattr(MOUNT_ATTR_IDMAP)", os.fspath(path))
    except BaseException:
        os.close(tree)
        raise
    return tree


def attach(tree_fd: int, target: str | os.PathLike[str]) -> None:
    """Attach the detached mount ``tree_fd`` at the directory ``target``."""
    where = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mountapi.move_mount_to_fd(tree_fd, where, os.fspath(target))
    finally:
        os.close(where)


def mount_idmapped(source: Path, target: Path, idmap: IdMap) -> None:
    """Mount ``source`` at ``target`` with its owners shifted by ``idmap``."""
    ns = userns_fd(idmap)
    try:
        tree = clone_idmapped(source, ns)
    finally:
        os.close(ns)
    try:
        attach(tree, target)
    finally:
        os.close(tree)


def probe_overlay(lower: Path, idmap: IdMap | None) -> str | None:
    """Whether an overlay over ``lower`` can be mounted, idmapped by ``idmap`` when given:
    ``None`` if it can, else the reason (naming the missing kernel or file-system feature).

    The trial runs in a forked child in a mount namespace of its own, on a tmpfs upper:
    whatever it mounts goes with the child, also when the caller is killed meanwhile."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="vz-overlay-probe-"))
    ns = userns_fd(idmap) if idmap is not None else None
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 1
            try:
                reason = _trial(lower, scratch, ns)
                code = 0 if reason is None else 1
                if reason:
                    os.write(write_end, reason.encode())
            finally:
                os._exit(code)
        os.close(write_end)
        write_end = -1
        chunks = []
        while chunk := os.read(read_end, 4096):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return None
        return b"".join(chunks).decode() or "the overlay trial mount failed"
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        if ns is not None:
            os.close(ns)
        os.rmdir(scratch)


def _trial(lower: Path, scratch: Path, ns: int | None) -> str | None:
    from vzcore.linux import mounts

    try:
        libc.unshare(mountapi.CLONE_NEWNS)
        mounts.make_private("/")
        mounts.mount("tmpfs", scratch, "tmpfs", data="mode=0700")
        for name in ("lower", "upper", "work", "merged"):
            (scratch / name).mkdir()
    except (OSError, KernelError) as exc:
        return f"cannot set up the probe ({exc})"
    source = lower
    if ns is not None:
        try:
            tree = clone_idmapped(lower, ns)
        except KernelError as exc:
            cause = os.strerror(exc.errno) if exc.errno else str(exc)
            return (f"the file system of {lower} cannot be idmapped (mount_setattr "
                    f"MOUNT_ATTR_IDMAP: {cause}; needs "
                    "Linux 5.12+ and a file system with idmap support: ext4, xfs, btrfs, tmpfs "
                    "6.3+)")
        try:
            attach(tree, scratch / "lower")
        finally:
            os.close(tree)
        source = scratch / "lower"
    try:
        mounts.mount("overlay", scratch / "merged", "overlay",
                     data=f"lowerdir={source},upperdir={scratch}/upper,workdir={scratch}/work")
    except KernelError as exc:
        what = "over an idmapped lower layer (Linux 5.19+)" if ns is not None else "here"
        cause = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"the kernel cannot mount overlayfs {what} ({cause}; needs the overlay module)"
    return None
