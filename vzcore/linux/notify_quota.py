"""The seccomp supervisor's answer to a CT's ``quotactl(2)``: the second-level quota
(``--quotaugidlimit``) of a CT in a user namespace.

Linux lets quotactl(2) set or read another user's quota only with ``CAP_SYS_ADMIN`` in the
*host's* user namespace, so the CT's root cannot use ``setquota`` or ``repquota`` on its own
users.  The supervisor (:mod:`vzcore.linux.notifyd`) makes the call for it, from the host,
when and only when all of this holds (:func:`answer_quotactl`):

* the command is a query or a limit of user or group quota: ``Q_GETQUOTA``, ``Q_SETQUOTA``,
  ``Q_GETNEXTQUOTA``, ``Q_GETINFO``, ``Q_SETINFO``, ``Q_GETFMT``, ``Q_SYNC``;
* the caller is in the CT's user namespace (that of its init) with ``CAP_SYS_ADMIN`` in its
  effective set (``/proc/TID/status``);
* the block device it names, looked up as the caller would (below its root, with
  ``openat2(RESOLVE_IN_ROOT)``), is a block device node of the CT's own root file system
  (``st_rdev`` equal to the ``st_dev`` of init's ``/``);
* the user or group ID is mapped in the CT's user namespace: it is translated to the host's
  (``/proc/INIT/uid_map``, ``gid_map``); an unmapped one fails with ``EINVAL``.

The result (``struct if_dqblk``, ``if_nextdqblk`` with its ID translated back, ``if_dqinfo``,
the format number) is written into the caller's memory.  Anything else continues in the
kernel (``SECCOMP_USER_NOTIF_FLAG_CONTINUE``), which then decides with the caller's own
credentials: switching quotas on or off, project quota, another file system or a caller
without the capability gets the kernel's ``EPERM`` (``EACCES`` for a node on a nodev
mount), and a user's query of their own quota
works as without the supervisor.  Continuing is safe here because nothing was decided on
what the caller's memory said: the supervisor either makes the call itself, on what it read
once, or leaves it wholly to the kernel.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from collections.abc import Callable, Sequence

from vzcore.linux.seccomp_notify import CallerMemory, Notification

_libc = ctypes.CDLL(None, use_errno=True)

# linux/quota.h: QCMD(cmd, type) = cmd << 8 | type
SUBCMDSHIFT = 8
Q_SYNC = 0x800001
Q_QUOTAON = 0x800002
Q_QUOTAOFF = 0x800003
Q_GETFMT = 0x800004
Q_GETINFO = 0x800005
Q_SETINFO = 0x800006
Q_GETQUOTA = 0x800007
Q_SETQUOTA = 0x800008
Q_GETNEXTQUOTA = 0x800009
USRQUOTA, GRPQUOTA = 0, 1

ANSWERED = (Q_SYNC, Q_GETFMT, Q_GETINFO, Q_SETINFO, Q_GETQUOTA, Q_SETQUOTA, Q_GETNEXTQUOTA)
"""The commands the supervisor makes for the CT's root (never Q_QUOTAON/Q_QUOTAOFF)."""

DQBLK = struct.Struct("=8QI4x")
"""``struct if_dqblk`` (72 bytes): bhardlimit, bsoftlimit, curspace, ihardlimit,
isoftlimit, curinodes, btime, itime, valid."""
NEXTDQBLK = struct.Struct("=8QII")
"""``struct if_nextdqblk`` (72 bytes): as ``if_dqblk``, then the ID found."""
DQINFO = struct.Struct("=QQII")
"""``struct if_dqinfo`` (24 bytes): bgrace, igrace, flags, valid."""
FMT = struct.Struct("=I")

Extent = tuple[int, int, int]
"""One line of a uid_map or gid_map: first ID inside, first ID on the host, count."""


class Continue(Exception):
    """The call is not the supervisor's to make: let it continue in the kernel."""


def read_map(pid: int, kind: int) -> list[Extent]:
    """The user (``USRQUOTA``) or group (``GRPQUOTA``) ID map of ``pid``'s user namespace."""
    name = "uid_map" if kind == USRQUOTA else "gid_map"
    with open(f"/proc/{pid}/{name}") as f:
        return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in f)]


def to_host(extents: Sequence[Extent], qid: int) -> int:
    """The host's ID of the CT's ``qid``; ``EINVAL`` when it is not mapped."""
    for inside, outside, count in extents:
        if inside <= qid < inside + count:
            return outside + qid - inside
    raise OSError(errno.EINVAL, f"ID {qid} is not mapped in the CT")


def to_ct(extents: Sequence[Extent], host_id: int) -> int | None:
    """The CT's ID of the host's ``host_id``; ``None`` when it has none."""
    for inside, outside, count in extents:
        if outside <= host_id < outside + count:
            return inside + host_id - outside
    return None


def _status_fields(tid: int) -> dict[str, str]:
    with open(f"/proc/{tid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def caller_is_ct_root(tid: int, init_pid: int) -> bool:
    """Whether thread ``tid`` is in the user namespace of the CT's init with
    ``CAP_SYS_ADMIN`` (bit 21) in its effective set."""
    try:
        if os.stat(f"/proc/{tid}/ns/user").st_ino != os.stat(f"/proc/{init_pid}/ns/user").st_ino:
            return False
        return bool(int(_status_fields(tid).get("CapEff", "0"), 16) >> 21 & 1)
    except (OSError, ValueError):
        return False


def quotactl(cmd: int, special: str, qid: int, buffer: ctypes.Array[ctypes.c_char] | None) -> None:
    """quotactl(2) as the host's root; raises ``OSError`` with the kernel's errno."""
    address = ctypes.cast(buffer, ctypes.c_void_p) if buffer is not None else ctypes.c_void_p(0)
    if _libc.quotactl(ctypes.c_int(cmd), os.fsencode(special), ctypes.c_int(qid), address) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def get_next(special: str, kind: int, extents: Sequence[Extent], qid: int) -> bytes:
    """``Q_GETNEXTQUOTA`` from the CT's ``qid``: the first entry at or past it whose ID the
    CT has, with that ID in the CT's terms (``ENOENT`` past the last)."""
    for inside, outside, count in sorted(extents):
        if inside + count <= qid:
            continue
        start = outside + max(0, qid - inside)
        buffer = ctypes.create_string_buffer(NEXTDQBLK.size)
        try:
            quotactl(Q_GETNEXTQUOTA << SUBCMDSHIFT | kind, special, start, buffer)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        *fields, host_id = NEXTDQBLK.unpack(buffer.raw)
        if outside <= host_id < outside + count:
            return NEXTDQBLK.pack(*fields, inside + host_id - outside)
        # past this extent (another extent's, or an ID the CT does not have): the next one
    raise OSError(errno.ENOENT, "no further quota entry")


def answer_quotactl(memory: CallerMemory, notification: Notification, init_pid: int,
                    root_dev: int, lookup: Callable[[int, bytes], int | None]
                    ) -> tuple[int, bytes | None, int]:
    """Make the intercepted ``quotactl(cmd, special, id, addr)`` for the CT's root.

    Returns the call's value, the bytes to write at ``addr`` (or ``None``) and ``addr``;
    raises :class:`Continue` when the kernel is to decide, ``OSError`` for the caller's
    errno.  ``lookup(pid, path)`` opens ``path`` (``O_PATH``) as process ``pid`` would
    look it up, ``None`` when it finds nothing."""
    cmd, special_at, qid, addr = (int(a) for a in notification.args[:4])
    cmd &= 0xFFFFFFFF
    qid &= 0xFFFFFFFF
    sub, kind = cmd >> SUBCMDSHIFT, cmd & 0xFF
    if sub not in ANSWERED or kind not in (USRQUOTA, GRPQUOTA) or not special_at:
        raise Continue
    if not caller_is_ct_root(notification.pid, init_pid):
        raise Continue
    try:
        path = memory.read_string(special_at)
    except OSError:
        raise Continue from None  # the kernel's own EFAULT
    fd = lookup(notification.pid, path)
    if fd is None:
        raise Continue  # the kernel's own ENOENT, ...
    try:
        st = os.fstat(fd)
        if not stat.S_ISBLK(st.st_mode) or st.st_rdev != root_dev:
            # Another file system's device: the kernel's EPERM (EACCES for a node on a
            # nodev mount).  The device number, not the name, is what is checked: the call
            # below goes through this very descriptor, whatever the name points to later.
            raise Continue
        special = f"/proc/self/fd/{fd}"  # quotactl looks the name up, following the link
        if sub in (Q_SYNC, Q_GETFMT, Q_GETINFO, Q_SETINFO):
            size = {Q_SYNC: 0, Q_GETFMT: FMT.size, Q_GETINFO: DQINFO.size,
                    Q_SETINFO: DQINFO.size}[sub]
            buffer = ctypes.create_string_buffer(size) if size else None
            if sub == Q_SETINFO and buffer is not None:
                buffer.raw = memory.read(addr, size)
            quotactl(cmd, special, 0, buffer)
            out = buffer.raw if buffer is not None and sub != Q_SETINFO else None
            return 0, out, addr
        extents = read_map(init_pid, kind)
        if sub == Q_GETNEXTQUOTA:
            return 0, get_next(special, kind, extents, qid), addr
        host_id = to_host(extents, qid)
        buffer = ctypes.create_string_buffer(DQBLK.size)
        if sub == Q_SETQUOTA:
            buffer.raw = memory.read(addr, DQBLK.size)
        quotactl(cmd, special, host_id, buffer)
        return 0, (buffer.raw if sub == Q_GETQUOTA else None), addr
    finally:
        os.close(fd)
