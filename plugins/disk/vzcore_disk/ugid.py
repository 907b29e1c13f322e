"""The second-level quota (``--quotaugidlimit N``): ordinary user and group quota inside
a CT's own file system, which the CT's root manages with the standard tools (``setquota``,
``quota``, ``repquota``, ``edquota`` from Debian's ``quota`` package).

What holds where (docs/disk.md, "The second-level quota"):

* layout ``image``: the image's ext4 gets the ``quota`` feature (hidden, journalled quota
  files) and is mounted with ``usrquota,grpquota``, so the kernel counts and enforces
  (EDQUOT).  The CT gets a node of its loop device in its /dev, named as ``/proc/mounts``
  inside names the source of ``/``: the quota tools find the device there and pass it to
  quotactl(2), which only looks the name up (the devices cgroup still refuses to open it).
* quotactl(2) and quotactl_fd(2) ask for ``CAP_SYS_ADMIN`` in the host's user namespace
  for everything but a user's query of their own quota: a CT in a user namespace gets
  EPERM from ``setquota`` (checked on Debian 12's 6.1 kernel).  So for such a CT the
  seccomp supervisor (the notify plugin, ``--syscall-intercept default``) makes its root's
  quotactl(2) from the host, on its own root file system and its own IDs only
  (:mod:`vzcore.linux.notify_quota`); with the interception off it is refused.  A
  privileged CT's seccomp profile lets through the queries and the limit setting, not
  switching quotas on or off.
* other layouts: a simfs directory shares the host's file system, whose user quota counts
  a uid across the whole host (a privileged CT's uids are the host's); btrfs has no user
  or group quota.  Both are refused.

N is what OpenVZ meant by it: the most distinct user and group IDs with quota entries.
OpenVZ's ploop (whose image this layout follows) only enabled the quota for any N > 0; the
kernel has no such bound, so vzcore enforces none and ``vzctl quota`` shows the count
against N (vzquota's "Ugid limit was exceeded").
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.errors import InvalidValue
from vzcore.values import Integer

if TYPE_CHECKING:
    from vzcore.container import Container

QUOTAUGIDLIMIT = Integer(0, 2**31 - 1)
"""``--quotaugidlimit N``: 0 (or unset) turns the second-level quota off."""
MOUNT_OPTIONS = ("usrquota", "grpquota")
INTERCEPT_KEY = "SYSCALL_INTERCEPT"
"""The notify plugin's setting: ``off`` leaves a user-namespace CT's quotactl(2) to the
kernel, which refuses it."""
LAYOUT = "image"


def limit_of(ct: Container, override: str | None = None, *, given: bool = False) -> int:
    """The CT's ``QUOTAUGIDLIMIT`` (``override`` when ``given``), 0 when unset."""
    text = override if given else ct.get("QUOTAUGIDLIMIT")
    if not text:
        return 0
    try:
        return QUOTAUGIDLIMIT.parse(text)
    except ValueError as exc:
        raise InvalidValue(f"CT {ct.ctid}: QUOTAUGIDLIMIT={text!r} in its config: {exc}; set "
                           f"it again with 'vzctl set {ct.ctid} --quotaugidlimit N --save'") from None


def missing_kernel_feature() -> str | None:
    """What the running kernel lacks for ext4's journalled user/group quota, probed:
    ``None`` when it has it.  ``CONFIG_QUOTA`` shows as ``/proc/sys/fs/quota``; the format
    (QFMT_VFS_V1, module ``quota_v2``) is loaded on demand, so it is loaded here as the
    kernel would and then looked for."""
    if not Path("/proc/sys/fs/quota").is_dir():
        return "disk quota support (CONFIG_QUOTA: /proc/sys/fs/quota is missing)"
    if _has_quota_v2():
        return None
    subprocess.run(["modprobe", "-q", "quota_v2"], capture_output=True, check=False)
    if _has_quota_v2():
        return None
    return (f"the quota format QFMT_V2 (module quota_v2: not built into Linux "
            f"{platform.release()} and 'modprobe quota_v2' found none)")


def _has_quota_v2() -> bool:
    if Path("/sys/module/quota_v2").exists():
        return True
    builtin = Path(f"/lib/modules/{platform.release()}/modules.builtin")
    try:
        return any(line.endswith("/quota_v2.ko") for line in builtin.read_text().splitlines())
    except OSError:
        return False


def refusal(ct: Container, limit: int, *, userns: bool, intercept: bool = True,
            probe_kernel: bool = True) -> str | None:
    """Why ``--quotaugidlimit limit`` cannot hold for ``ct`` (the whole message: CT,
    parameter, reason, fix), ``None`` when it can (or ``limit`` is 0).  ``userns``: the CT
    runs (or will run) in a user namespace; ``intercept``: the seccomp supervisor will
    make its root's quotactl(2) (``SYSCALL_INTERCEPT`` is not ``off``)."""
    if limit == 0:
        return None
    head = f"CT {ct.ctid}: --quotaugidlimit {limit}"
    if ct.layout != LAYOUT:
        why = {"simfs": "a simfs directory lives on the host's file system, whose user quota "
                        "counts a user ID across the whole host",
               "btrfs": "btrfs has no user or group quota"}.get(
                   ct.layout, f"layout {ct.layout} has no user or group quota of its own")
        return (f"{head}: {why}; the second-level quota needs --layout image (an existing CT: "
                f"'vzctl convert {ct.ctid} --layout image --diskspace ...'), or leave it at 0")
    if userns and not intercept:
        return (f"{head}: the CT runs in a user namespace with --syscall-intercept off, and "
                "Linux lets quotactl(2) set or read other users' quotas only with "
                "CAP_SYS_ADMIN in the host's user namespace (setquota inside gets EPERM); "
                f"turn the interception on ('vzctl set {ct.ctid} --syscall-intercept default "
                "--save': the host's supervisor then makes the CT root's quotactl), or use "
                "the privileged profile (LOCAL_UID=0)")
    if probe_kernel:
        missing = missing_kernel_feature()
        if missing is not None:
            return (f"{head}: this kernel lacks {missing}, which ext4's user and group quota "
                    "needs; boot a kernel with it (Debian's stock kernel has it), or leave "
                    "--quotaugidlimit at 0")
    return None


def set_feature(ctid: int, image: Path, on: bool, features: str) -> None:
    """Give the unmounted ``image`` ext4's ``quota`` feature with user and group quota
    files, or take it away (``features``: the superblock's feature list, to do nothing
    when it is already so)."""
    from vzcore_disk.tools import run

    has = "quota" in features.split()
    if on and not has:
        run(ctid, "turn on the image's user and group quota",
            ["tune2fs", "-O", "quota", "-Q", "usrquota,grpquota", str(image)])
    elif not on and has:
        run(ctid, "turn off the image's user and group quota",
            ["tune2fs", "-O", "^quota", str(image)])


def root_node(root: str = "/") -> tuple[str, int]:
    """The name in /dev (``loopN``) of the device that the mount table names as the source
    of the CT's root ``root``, and that device's number."""
    device = os.stat(root).st_dev
    source = ""
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            if fields[4] == root:
                source = fields[fields.index("-") + 2]  # the last mount on it is the CT's
    name = source.removeprefix("/dev/")
    if not source.startswith("/dev/") or not name or "/" in name:
        raise OSError(errno.ENODEV, f"the CT's root is mounted from {source!r}, no /dev node")
    return name, device


def make_root_node() -> None:
    """In a privileged CT, just after its root switch (still with every capability): make
    the block node that its mount table names as the source of ``/`` (``/dev/loopN``), with
    the device number of ``/``, owned by root, mode 0600.  quotactl(2) only looks the name
    up; opening the device stays the devices cgroup's to refuse.  (A CT in a user namespace
    cannot mknod it: the builder has the isolation plugin make it, see
    :data:`vzcore.linux.devnodes.BLOCK_NODES_OPTION`.)"""
    name, device = root_node("/")
    source = f"/dev/{name}"
    try:
        os.unlink(source)
    except FileNotFoundError:
        pass
    os.mknod(source, stat.S_IFBLK | 0o600, device)


# quotactl(2) commands (linux/quota.h): QCMD(cmd, type) = cmd << 8 | type
Q_GETNEXTQUOTA = 0x800009
USRQUOTA, GRPQUOTA = 0, 1


class _NextDqblk(ctypes.Structure):
    _fields_ = [("dqb_bhardlimit", ctypes.c_uint64), ("dqb_bsoftlimit", ctypes.c_uint64),
                ("dqb_curspace", ctypes.c_uint64), ("dqb_ihardlimit", ctypes.c_uint64),
                ("dqb_isoftlimit", ctypes.c_uint64), ("dqb_curinodes", ctypes.c_uint64),
                ("dqb_btime", ctypes.c_uint64), ("dqb_itime", ctypes.c_uint64),
                ("dqb_valid", ctypes.c_uint32), ("dqb_id", ctypes.c_uint32)]


def count_ids(device: str) -> int:
    """The user and group IDs with a quota entry on the file system of ``device`` (the
    host's view of the CT's IDs: a privileged CT's are the host's), as ``repquota``
    lists them; walks the kernel's entries with Q_GETNEXTQUOTA."""
    # the C library already loaded (find_library would run ldconfig; ctypes.util would be
    # imported by every start)
    libc = ctypes.CDLL(None, use_errno=True)
    found = 0
    for kind in (USRQUOTA, GRPQUOTA):
        next_id = 0
        while True:
            buf = _NextDqblk()
            if libc.quotactl(Q_GETNEXTQUOTA << 8 | kind, os.fsencode(device), next_id,
                             ctypes.byref(buf)) != 0:
                code = ctypes.get_errno()
                if code in (errno.ENOENT, errno.ESRCH):
                    break  # no entry past next_id (ESRCH: this kind is off)
                raise OSError(code, os.strerror(code), device)
            found += 1
            if buf.dqb_id >= 0xFFFFFFFE:
                break
            next_id = buf.dqb_id + 1
    return found
