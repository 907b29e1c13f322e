"""The ``btrfs`` layout: a subvolume per CT on the btrfs file system at ``BTRFS_POOL``.

The CT's subvolume (``BTRFS_POOL/CTID``) is created in the level-1 qgroup ``1/CTID``, which
carries the diskspace limit.  The pool runs btrfs's *simple* quotas (Linux 6.7+): a
subvolume made inside the CT's subvolume (``btrfs subvolume create`` needs no privilege)
joins the same ``1/CTID`` by the kernel's auto-inheritance, so the CT cannot leave its
limit by writing into a subvolume of its own (the escape Incus warns about for full
qgroups).  Inodes are counted, never limited: btrfs has no inode quota.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

from vzcore.errors import VzError
from vzcore_disk.tools import run

BTRFS_SUPER_MAGIC = 0x9123683E
_QUOTA_CTL = 0xC0109428  # _IOWR(0x94, 40, struct btrfs_ioctl_quota_ctl_args)
_ENABLE = 1
_ENABLE_SIMPLE = 4


def is_btrfs(path: Path) -> bool:
    import ctypes
    import ctypes.util

    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = StatFs()
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return False
    return buf.f_type & 0xFFFFFFFF == BTRFS_SUPER_MAGIC


def sysfs_dir(pool: Path) -> Path:
    """``/sys/fs/btrfs/FSID`` of the file system holding ``pool``."""
    done = run(0, "read the pool's file system ID", ["btrfs", "filesystem", "show", str(pool)])
    for word in done.stdout.split():
        if len(word) == 36 and word.count("-") == 4:
            return Path("/sys/fs/btrfs") / word
    raise VzError(f"cannot find the btrfs file system ID of {pool}")


def quota_mode(pool: Path) -> str | None:
    """``simple``, ``qgroup`` (full accounting) or ``None`` (quotas off)."""
    qgroups = sysfs_dir(pool) / "qgroups"
    if not qgroups.is_dir():
        return None
    try:
        return (qgroups / "mode").read_text().strip()
    except OSError:
        return "qgroup"


def enable_simple_quota(ctid: int, pool: Path) -> None:
    """Turn on simple quotas; a kernel without them (before 6.7) is refused by name."""
    fd = os.open(pool, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _QUOTA_CTL, struct.pack("QQ", _ENABLE_SIMPLE, 0))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            raise VzError(f"CT {ctid}: layout btrfs needs btrfs simple quotas (Linux 6.7 or "
                          "later), which this kernel lacks; without them a CT escapes its "
                          "limit through a subvolume of its own") from exc
        raise VzError(f"CT {ctid}: cannot enable simple quotas on {pool}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def qgroup(ctid: int) -> str:
    return f"1/{ctid}"


def create(ctid: int, pool: Path, subvolume: Path, kblocks: int | None) -> None:
    """Make the CT's qgroup with its limit, then its subvolume inside it."""
    run(ctid, "create the CT's qgroup", ["btrfs", "qgroup", "create", qgroup(ctid), str(pool)])
    set_limit(ctid, pool, kblocks)
    run(ctid, "create the CT's subvolume",
        ["btrfs", "subvolume", "create", "-i", qgroup(ctid), str(subvolume)])


def set_limit(ctid: int, pool: Path, kblocks: int | None) -> None:
    """Limit ``1/CTID`` to ``kblocks`` 1K blocks (``None``: no limit)."""
    value = "none" if kblocks is None else f"{kblocks * 1024}"
    run(ctid, "set the CT's qgroup limit", ["btrfs", "qgroup", "limit", value, qgroup(ctid), str(pool)])


def qgroup_files(pool: Path, ctid: int) -> tuple[Path, Path]:
    """The sysfs files of ``1/CTID``: the bytes its subvolumes hold, and its limit in
    bytes (0 or 2**64-1: none).  Read at each call by the seccomp supervisor that
    answers statfs in the CT (the notify plugin)."""
    base = sysfs_dir(pool) / "qgroups" / f"1_{ctid}"
    return base / "referenced", base / "max_referenced"


def referenced_kblocks(pool: Path, ctid: int) -> tuple[int, int | None]:
    """Bytes the CT's subvolumes hold, in 1K blocks, and the qgroup's limit."""
    used_file, limit_file = qgroup_files(pool, ctid)
    used = int(used_file.read_text()) // 1024
    limit = int(limit_file.read_text())
    return used, None if limit in (0, 2**64 - 1) else limit // 1024


def count_inodes(root: Path) -> int:
    """Files and directories below ``root`` (btrfs keeps no count of them per subvolume)."""
    count = 1
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    count += 1
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return count


def subvolumes_below(top: Path) -> list[Path]:
    """Subvolumes at and below ``top`` (a subvolume root is inode 256), deepest first."""
    found = []
    stack = [top]
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_ino == 256:
            found.append(path)
        try:
            with os.scandir(path) as entries:
                stack.extend(Path(e.path) for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def delete(ctid: int, pool: Path, subvolume: Path) -> None:
    """Delete the CT's subvolume, the ones the CT made inside it, and its qgroup.

    A full qgroup would refuse even the deletion (it needs room for metadata): the limit
    goes first.  The qgroup can go once the kernel's cleaner dropped the subvolumes; each
    deletion commits, which wakes the cleaner (else ``subvolume sync`` waits for the next
    periodic commit, 30 s by default)."""
    exists = (sysfs_dir(pool) / "qgroups" / f"1_{ctid}").exists()
    if exists:
        set_limit(ctid, pool, None)
    if subvolume.exists():
        for nested in subvolumes_below(subvolume):
            run(ctid, f"delete subvolume {nested}",
                ["btrfs", "subvolume", "delete", "--commit-after", str(nested)])
        run(ctid, "wait for the deleted subvolumes to be dropped",
            ["btrfs", "subvolume", "sync", str(pool)])
    if exists:
        _destroy_qgroup(ctid, pool)


def _destroy_qgroup(ctid: int, pool: Path) -> None:
    """Remove ``1/CTID``.  The qgroups of the dropped subvolumes leave it at a later
    transaction commit: commit (``filesystem sync``) and try again until they did (the
    kernel answers EBUSY meanwhile); a few commits at most."""
    import time

    for attempt in range(50):
        run(ctid, "commit the pool", ["btrfs", "filesystem", "sync", str(pool)])
        try:
            run(ctid, "remove the CT's qgroup",
                ["btrfs", "qgroup", "destroy", qgroup(ctid), str(pool)])
            return
        except VzError as exc:
            if "busy" not in str(exc).lower() or attempt == 49:
                raise
            time.sleep(0.1)
