"""ext4 and XFS project quota on a directory tree, as Incus's ``dir`` driver limits an
instance: every file of the tree carries one project ID (directories with the inherit
flag, so what is made below them gets it too), and the file system counts and limits the
blocks and inodes of that ID.

All through quotactl_fd(2) (Linux 5.14) on the tree's own directory, so no block device
needs naming, and the ``FS_IOC_FSGETXATTR``/``FS_IOC_FSSETXATTR`` ioctls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat
import struct
from pathlib import Path

PRJQUOTA = 2
Q_GETQUOTA, Q_SETQUOTA = 0x800007, 0x800008
Q_XGETQSTAT = 0x5805
QIF_BLIMITS, QIF_ILIMITS = 1, 4
FS_QUOTA_PDQ_ACCT, FS_QUOTA_PDQ_ENFD = 1 << 4, 1 << 5
SYS_QUOTACTL_FD = 443  # the same number on every architecture (unified syscall table)

FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR = 0x801C581F, 0x401C5820
FS_XFLAG_PROJINHERIT = 0x200
_FSXATTR = struct.Struct("IIIII8x")  # xflags, extsize, nextents, projid, cowextsize
_DQBLK = struct.Struct("QQQQQQQQI4x")  # struct if_dqblk

PROJECT_BASE = 0
"""A CT's project ID is ``PROJECT_BASE + CTID`` (vzquota keyed its quota by the CT ID)."""


def project_id(ctid: int) -> int:
    return PROJECT_BASE + ctid


def _quotactl_fd(path: Path, cmd: int, qid: int, buf: ctypes.Array[ctypes.c_char]) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc.syscall(SYS_QUOTACTL_FD, fd, cmd << 8 | PRJQUOTA, qid, buf) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(path))
    finally:
        os.close(fd)


def missing(path: Path) -> str | None:
    """Why the file system of directory ``path`` cannot limit a tree by project quota
    (probed with quotactl_fd: enforcement of project quota on), ``None`` when it can."""
    buf = ctypes.create_string_buffer(80)  # struct fs_quota_stat
    try:
        _quotactl_fd(path, Q_XGETQSTAT, 0, buf)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return ("quotactl_fd(2) answers ENOSYS there: this kernel has no quotactl_fd "
                    "(Linux 5.14) or no quota support for that file system")
        if exc.errno in (errno.ESRCH, errno.ENOENT):
            return "project quota is off on it (ext4: mkfs/tune2fs -O project,quota and mount " \
                   "option prjquota; XFS: mount option prjquota)"
        return f"it answers quotactl with {os.strerror(exc.errno or 0)}"
    flags = struct.unpack_from("H", buf.raw, 2)[0]
    if not flags & FS_QUOTA_PDQ_ACCT:
        return "project quota is off on it (mount option prjquota)"
    if not flags & FS_QUOTA_PDQ_ENFD:
        return "project quota is counted but not enforced (mount option prjquota, not pqnoenforce)"
    return None


def _xattr(fd: int) -> tuple[int, int, int, int, int]:
    buf = bytearray(_FSXATTR.size)
    fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
    xflags, extsize, nextents, projid, cow = _FSXATTR.unpack(bytes(buf))
    return xflags, extsize, nextents, projid, cow


def assigned(top: Path, projid: int) -> bool:
    """Whether ``top`` carries ``projid`` with the inherit flag (set by :func:`assign`)."""
    try:
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        xflags, _extsize, _nextents, current, _cow = _xattr(fd)
    except OSError:
        return False
    finally:
        os.close(fd)
    return current == projid and bool(xflags & FS_XFLAG_PROJINHERIT)


def _set_one(fd: int, projid: int, directory: bool) -> None:
    xflags, extsize, nextents, current, cow = _xattr(fd)
    wanted = xflags | FS_XFLAG_PROJINHERIT if directory else xflags
    if current != projid or wanted != xflags:
        fcntl.ioctl(fd, FS_IOC_FSSETXATTR, _FSXATTR.pack(wanted, extsize, nextents, projid, cow))


def assign(top: Path, projid: int) -> None:
    """Give every directory and regular file below ``top`` (on its file system) the
    project ``projid``, directories with the inherit flag.  Symbolic links, devices,
    sockets and FIFOs cannot be opened for the ioctl: they keep the ID they had (new ones
    inherit it from their directory).  The tree's own directory goes last, so that
    :func:`assigned` says yes only once the whole walk is done (a killed walk is resumed
    by the next one)."""
    top_dev = os.lstat(top).st_dev
    stack = [str(top)]
    dirs: list[str] = []
    while stack:
        path = stack.pop()
        dirs.append(path)
        with os.scandir(path) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if st.st_dev != top_dev:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                elif stat.S_ISREG(st.st_mode):
                    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                                 | os.O_NONBLOCK | os.O_NOATIME)
                    try:
                        _set_one(fd, projid, directory=False)
                    finally:
                        os.close(fd)
    for path in reversed(dirs):  # the deepest first, ``top`` last
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _set_one(fd, projid, directory=True)
        finally:
            os.close(fd)


def set_limits(top: Path, projid: int, kblocks: int | None, inodes: int | None) -> None:
    """Limit the project to ``kblocks`` 1K blocks and ``inodes`` inodes (``None``: no
    limit); the kernel's soft limits stay 0 (vzcore keeps the soft limits and the grace
    itself, as on the other layouts)."""
    buf = ctypes.create_string_buffer(_DQBLK.pack(kblocks or 0, 0, 0, inodes or 0, 0, 0, 0, 0,
                                                  QIF_BLIMITS | QIF_ILIMITS), _DQBLK.size)
    _quotactl_fd(top, Q_SETQUOTA, projid, buf)


def usage(top: Path, projid: int) -> tuple[int, int, int, int]:
    """The project's use and hard limits: 1K blocks used, block limit, inodes used,
    inode limit (limits 0: none)."""
    buf = ctypes.create_string_buffer(_DQBLK.size)
    _quotactl_fd(top, Q_GETQUOTA, projid, buf)
    bhard, _bsoft, space, ihard, _isoft, inodes, _bt, _it, _valid = _DQBLK.unpack(buf.raw)
    return -(-space // 1024), bhard, inodes, ihard
