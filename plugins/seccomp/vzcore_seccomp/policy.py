"""The deny lists, in the spirit of LXC's: what a CT process may never call.

Each entry says why.  Calls the CT's capabilities already forbid (setting the clock,
``reboot`` of the host) are not repeated here.  A CT in a user namespace keeps ``mount``,
``unshare`` and ``ptrace`` because system containers use them and the kernel confines
them to its namespaces (it locks the masks vzctl mounted).

A privileged CT's root has the host's ``CAP_SYS_ADMIN``: nothing in the kernel stops it
from unmounting the masks, remounting /sys read-write or mounting proc, sysfs, cgroupfs
or binfmt_misc (which are the host's instances) again.  LXC stops that with AppArmor
rules on the file-system type; classic BPF cannot read the type string, so
:data:`PRIVILEGED` refuses every way to change the mount table, as Docker's default
profile does for a container without ``CAP_SYS_ADMIN``.  The price: a privileged CT
cannot mount anything itself (docs/security.md).

What systemd 252 needs there, and why it is still refused: its services' sandboxing
(``ProtectSystem=``, ``PrivateTmp=``: systemd-logind) and its credentials
(``LoadCredential=``: systemd-sysctl, -sysusers, -tmpfiles) make a mount namespace and then
mount in it: a propagation change of ``/``, binds, read-only remounts, a ramfs or tmpfs,
``MS_MOVE``.  In a privileged CT the same calls mount a fresh procfs (``/proc/sys``
writable: ``kernel.core_pattern`` runs a program as the host's root) or sysfs, or move a
mask away, and only the file-system type string or the mount's identity tells them apart,
which a classic-BPF filter cannot read.  So mount stays refused, and making a mount
namespace is refused too (:data:`PRIVILEGED_RULES`): a namespace nobody can mount in is of
no use, and systemd, refused it with ``EPERM``, takes its documented container fallback
(services run without file-system sandboxing, credentials go to a plain directory)
instead of failing the units (docs/system-cts.md).
"""

from __future__ import annotations

import errno
import stat

from vzcore.linux.devnodes import STANDARD
from vzcore.linux.seccomp import ArgCheck, ArgRule

DEFAULT: dict[str, tuple[int, str]] = {
    "init_module": (errno.EPERM, "loading kernel modules"),
    "finit_module": (errno.EPERM, "loading kernel modules"),
    "delete_module": (errno.EPERM, "unloading kernel modules"),
    "kexec_load": (errno.EPERM, "replacing the running kernel"),
    "kexec_file_load": (errno.EPERM, "replacing the running kernel"),
    "open_by_handle_at": (errno.EPERM, "opening host files by handle (the 'shocker' escape)"),
    "bpf": (errno.EPERM, "loading BPF programs into the kernel"),
    "perf_event_open": (errno.EPERM, "kernel-wide tracing and side channels"),
    "userfaultfd": (errno.EPERM, "a common tool for kernel exploit timing"),
    "keyctl": (errno.ENOSYS, "the kernel keyring is not namespaced (ENOSYS: programs fall back)"),
    "add_key": (errno.ENOSYS, "the kernel keyring is not namespaced"),
    "request_key": (errno.ENOSYS, "the kernel keyring is not namespaced"),
    "syslog": (errno.EPERM, "reading or clearing the host's kernel log"),
    "acct": (errno.EPERM, "host-wide process accounting"),
    "swapon": (errno.EPERM, "host swap"),
    "swapoff": (errno.EPERM, "host swap"),
    "lookup_dcookie": (errno.EPERM, "kernel profiling interface"),
    "iopl": (errno.EPERM, "raw I/O port access"),
    "ioperm": (errno.EPERM, "raw I/O port access"),
}


NEW_MOUNT_API = ("open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
                 "mount_setattr")

PRIVILEGED: dict[str, tuple[int, str]] = {
    "mount": (errno.EPERM, "mounting proc, sysfs, cgroupfs, binfmt_misc again (the host's "
                           "instances), binding /proc past its masks, remounting /sys "
                           "read-write"),
    "umount": (errno.EPERM, "unmounting the masks over /proc and /sys"),
    "umount2": (errno.EPERM, "unmounting the masks over /proc and /sys"),
    "pivot_root": (errno.EPERM, "part of changing the mount table"),
    **{name: (errno.ENOSYS, "the new mount API does all mount(2) does (ENOSYS: programs "
                            "fall back to mount(2), which is refused)")
       for name in NEW_MOUNT_API},
    "fanotify_init": (errno.EPERM, "a file-system-wide mark sees, and hands out descriptors "
                                   "of, every file of the host's file system the CT lives on"),
    "quotactl": (errno.EPERM, "switching the host file system's quotas off"),
    "quotactl_fd": (errno.EPERM, "switching the host file system's quotas off"),
    "clone3": (errno.ENOSYS, "its flags are in a structure the filter cannot read, so a "
                             "mount namespace could be made (ENOSYS: programs fall back to "
                             "clone(2), whose CLONE_NEWNS is refused)"),
}
"""Added for a privileged CT (no user namespace), whose capabilities are the host's."""

FIFREEZE, FITHAW = 0xC0045877, 0xC0045878

WHOLE_FILE_SYSTEM_IOCTLS = {
    "FIFREEZE": FIFREEZE,
    "FITHAW": FITHAW,
    "FS_IOC_SHUTDOWN": 0x8004587D,  # _IOR('X', 125, u32): ext4, XFS (GOINGDOWN), f2fs
    "FITRIM": 0xC0185879,  # discards every free block: the host's I/O
    "FS_IOC_SETFSLABEL": 0x41009432,  # the host's fstab may mount by LABEL=
    "EXT4_IOC_SETFSUUID": 0x4008662C,  # ... or by UUID=
    "EXT4_IOC_RESIZE_FS": 0x40086610,
    "EXT4_IOC_GROUP_EXTEND": 0x40086607,
    "EXT4_IOC32_GROUP_EXTEND": 0x40046607,
    "EXT4_IOC_GROUP_ADD": 0x40286608,
    "EXT4_IOC32_GROUP_ADD": 0x40246608,
}
"""ioctl requests that act on the whole file system a CT lives on, which is the host's
(the root of the CT is a directory of it): freezing it stops every writer of the host,
shutting it down or resizing it is the host's file system gone or changed.  Numbers
from linux/fs.h and fs/ext4/ext4.h (the IOC32 ones are the i386 ABI's)."""


def _dev(major: int, minor: int) -> int:
    """The kernel's ``new_encode_dev``: the ``dev`` argument of mknod(2)."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


DEVICE_ALLOW = {
    **{d.name: _dev(d.major, d.minor) for d in STANDARD if d.minor is not None},
    "whiteout": _dev(0, 0),  # overlayfs whiteouts are character devices 0:0
}
"""Character devices a CT may create with mknod(2): the ones vzctl gives every CT's /dev
(:data:`vzcore.linux.devnodes.STANDARD`: its nodes, console, ptmx).  Block devices never:
a node for the host's disk is the host's disk.  Devices granted to a CT are made by the
host, not by mknod inside."""


S_IFMT = 0o170000
"""The file-type bits of a mode (``stat.S_IFMT`` is a function)."""


def _mknod_rules(name: str, mode_arg: int) -> list[ArgRule]:
    """Refuse block devices, and character devices not in :data:`DEVICE_ALLOW` (the
    device number is the argument after the mode)."""
    return [
        ArgRule(name, errno.EPERM, [ArgCheck(mode_arg, [stat.S_IFBLK], mask=S_IFMT)]),
        ArgRule(name, errno.EPERM, [ArgCheck(mode_arg, [stat.S_IFCHR], mask=S_IFMT),
                                    ArgCheck(mode_arg + 1, sorted(DEVICE_ALLOW.values()),
                                             negate=True)]),
    ]


RULES: list[ArgRule] = [
    ArgRule("ioctl", errno.EPERM, [ArgCheck(1, sorted(WHOLE_FILE_SYSTEM_IOCTLS.values()))]),
    *_mknod_rules("mknod", 1),
    *_mknod_rules("mknodat", 2),
]
"""Calls refused for some arguments, in both profiles (harmless in a user namespace,
where the kernel refuses them too)."""


CLONE_NEWNS = 0x00020000

PRIVILEGED_RULES: list[ArgRule] = [
    ArgRule("unshare", errno.EPERM, [ArgCheck(0, [CLONE_NEWNS], mask=CLONE_NEWNS)]),
    ArgRule("clone", errno.EPERM, [ArgCheck(0, [CLONE_NEWNS], mask=CLONE_NEWNS)]),
]
"""Added for a privileged CT: no new mount namespace (see the module's docstring).  EPERM,
which systemd reads as "in a container without the privilege: go on without"."""


def denied(privileged: bool = False, ugid_quota: bool = False) -> dict[str, int]:
    """System call name -> errno of the default profile, plus :data:`PRIVILEGED` for a
    privileged CT; ``ugid_quota``: quotactl(2) is left to :data:`QUOTA_RULES`."""
    table = {**DEFAULT, **PRIVILEGED} if privileged else DEFAULT
    return {name: error for name, (error, _why) in table.items()
            if not (ugid_quota and name == "quotactl")}


QUOTA_COMMANDS = (0x800001, 0x800004, 0x800005, 0x800006, 0x800007, 0x800008, 0x800009,
                  0x5803, 0x5804, 0x5805, 0x5807, 0x5808, 0x5809)
"""quotactl(2) commands a privileged CT with the second-level quota (``QUOTAUGIDLIMIT``)
may use on its own file system (linux/quota.h, linux/dqblk_xfs.h): Q_SYNC, Q_GETFMT,
Q_GETINFO, Q_SETINFO, Q_GETQUOTA, Q_SETQUOTA, Q_GETNEXTQUOTA and XFS's Q_XGETQUOTA,
Q_XSETQLIM, Q_XGETQSTAT, Q_XQUOTASYNC, Q_XGETQSTATV, Q_XGETNEXTQUOTA: queries and limits,
never switching quotas on or off.  The only block device it can name is its own root's
(mknod of block devices is refused; its root is mounted nodev), so the limits it sets are
its own users' on its own file system; quotactl_fd(2), which reaches any file system the
CT has a file of, stays refused."""

QUOTA_RULES: list[ArgRule] = [
    ArgRule("quotactl", errno.EPERM,
            [ArgCheck(0, [c << 8 for c in QUOTA_COMMANDS], mask=0xFFFFFF00, negate=True)]),
]


PROJECT_IOCTLS = {
    "FS_IOC_FSSETXATTR": 0x401C5820,  # _IOW('X', 32, struct fsxattr): project ID, PROJINHERIT
    "FS_IOC_SETFLAGS": 0x40086602,  # _IOW('f', 2, long): chattr, FS_PROJINHERIT_FL among them
    "FS_IOC32_SETFLAGS": 0x40046602,  # the same with the i386 ABI's int
}
"""ioctl requests that change a file's project ID or a directory's project-inherit flag
(linux/fs.h).  A simfs CT's limits are the project quota of its tree on the host's file
system (the disk plugin); the kernel lets only the host's user namespace change project
IDs, which a privileged CT's root is in: given these, it would move its files out of its
project (or make new ones outside it) and write past its limits.  The filter cannot read
the structure they pass, so they are refused whole: ``chattr`` and ``xfs_io chattr``
fail with EPERM in such a CT (``lsattr``'s reads stay)."""

PROJECT_RULES: list[ArgRule] = [
    ArgRule("ioctl", errno.EPERM, [ArgCheck(1, sorted(PROJECT_IOCTLS.values()))]),
]


def rules(privileged: bool = False, ugid_quota: bool = False,
          project_quota: bool = False) -> list[ArgRule]:
    """The argument rules of the default profile, plus :data:`PRIVILEGED_RULES` for a
    privileged CT, :data:`QUOTA_RULES` for a CT with the second-level quota and
    :data:`PROJECT_RULES` for a privileged CT limited by project quota."""
    return [*RULES, *(PRIVILEGED_RULES if privileged else []),
            *(QUOTA_RULES if ugid_quota else []), *(PROJECT_RULES if project_quota else [])]
