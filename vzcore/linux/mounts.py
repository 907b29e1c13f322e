"""Mounts: flags, bind mounts, remounts, pivot_root, and reading mountinfo."""

from __future__ import annotations

import os
import re

import attrs

from vzcore.errors import KernelError
from vzcore.linux import libc

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_STRICTATIME = 0x1000000

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

EINVAL = 22
ENOENT = 2


def mount(source: str | None, target: str | os.PathLike[str], fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises :class:`vzcore.errors.KernelError`."""
    libc.mount(source, os.fspath(target), fstype, flags, data)


def bind(source: str | os.PathLike[str], target: str | os.PathLike[str], *,
         recursive: bool = True, readonly: bool = False, extra: int = 0) -> None:
    """Bind ``source`` on ``target``; ``readonly`` remounts the bind read-only."""
    flags = MS_BIND | (MS_REC if recursive else 0)
    mount(os.fspath(source), target, None, flags)
    if readonly or extra:
        remount_bind(target, MS_RDONLY * readonly | extra)


def remount_bind(target: str | os.PathLike[str], flags: int) -> None:
    """Change the per-mount flags of the bind mount at ``target``, keeping locked ones."""
    current = statvfs_flags(os.fspath(target))
    mount(None, target, None, MS_REMOUNT | MS_BIND | current | flags)


def statvfs_flags(path: str) -> int:
    """The mount flags that the kernel locks for an unprivileged remount (ST_* -> MS_*)."""
    st = os.statvfs(path)
    mapping = {os.ST_RDONLY: MS_RDONLY, os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV,
               os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: MS_NOATIME}
    return sum(ms for st_flag, ms in mapping.items() if st.f_flag & st_flag)


def make_private(target: str = "/", *, recursive: bool = True) -> None:
    """Stop mount events propagating between ``target`` and the host."""
    mount(None, target, None, MS_PRIVATE | (MS_REC if recursive else 0))


def umount(target: str | os.PathLike[str], *, detach: bool = False, missing_ok: bool = True) -> None:
    """Unmount ``target`` (without following a final symlink); ``missing_ok`` ignores
    "not mounted" and "no such file"."""
    try:
        libc.umount2(os.fspath(target), UMOUNT_NOFOLLOW | (MNT_DETACH if detach else 0))
    except KernelError as exc:
        if not (missing_ok and exc.errno in (EINVAL, ENOENT)):
            raise


def pivot_to_cwd() -> None:
    """Make the working directory (a mount point) the root and detach the old root."""
    libc.pivot_root(".", ".")
    libc.umount2(".", MNT_DETACH)
    os.chdir("/")


@attrs.frozen
class MountEntry:
    """One line of ``/proc/PID/mountinfo``."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: str
    fstype: str
    source: str
    super_options: str = ""


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mountinfo(pid: int | str = "self") -> list[MountEntry]:
    """Parse ``/proc/PID/mountinfo``."""
    entries = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            entries.append(MountEntry(
                int(fields[0]), int(fields[1]), _unescape(fields[3]), _unescape(fields[4]),
                fields[5], rfields[0], _unescape(rfields[1]) if len(rfields) > 1 else "",
                rfields[2] if len(rfields) > 2 else "",
            ))
    return entries


def is_mount_point(path: str | os.PathLike[str]) -> bool:
    """Whether something is mounted exactly at ``path`` in the caller's mount namespace.

    Asks the kernel about ``path`` alone (``statx``: is it a mount's root?) where it can
    tell: the host's mountinfo grows with every running CT (a start asks three times, and
    a host running 1,000 CTs has thousands of lines).  Otherwise compares the kernel's
    escaped mount point field of each mountinfo line (without parsing every entry)."""
    target = os.path.realpath(path)
    try:
        answer = libc.mount_root(target)
    except (FileNotFoundError, NotADirectoryError):
        return False  # nothing there: nothing is mounted on it
    except OSError:
        answer = None  # out of reach: mountinfo still knows
    if answer is not None:
        return answer
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("\n", "\\012")):
        target = target.replace(char, code)  # as the kernel's mangling of mount points
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ", 5)[4] == target for line in f)


def mounts_below(path: str | os.PathLike[str]) -> list[str]:
    """Mount points at or below ``path``, deepest first (the order to unmount them)."""
    base = os.path.realpath(path).rstrip("/") + "/"
    found = {e.mount_point for e in mountinfo() if (e.mount_point + "/").startswith(base)}
    return sorted(found, key=lambda p: p.count("/"), reverse=True)
