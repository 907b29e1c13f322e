"""What a CT whose init boots a distribution (systemd, sysvinit) gets beyond
:mod:`vzcore_isolation.rootfs`: systemd's container interface.

Built in the CT's mount namespace before the root switch, as the host's root, through
:mod:`vzcore.linux.safefs` (the mounts are locked once init enters the CT's user
namespace):

``/run`` and ``/run/lock``
    tmpfs owned by the CT's root (systemd and sysvinit expect an empty /run at boot).
``/run/host``
    the host directory of the CT's notify socket (read-only; systemd-nspawn's place), so
    that systemd's ``READY=1`` reaches ``vzctl start --wait``.
``/sys/fs/cgroup``
    cgroup v1 or hybrid host: a read-only tmpfs holding the CT's own group of the
    ``name=systemd`` hierarchy at ``systemd`` and of the cgroup2 hierarchy at
    ``unified`` (systemd 252's "hybrid" layout), nothing else: systemd's container
    interface asks for every controller hierarchy or none, and none keeps the host's
    controllers (the limits vzctl set) out of the CT's reach.  cgroup v2 host: the CT's
    own group of the unified hierarchy is /sys/fs/cgroup itself.  Each is a bind mount of
    the CT's own group, whose directory and process files its root owns (the start
    delegated them), so the CT can make groups below its own and nowhere else; the
    groups above it are not even visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from vzcore.linux import mounts, safefs
from vzcore.linux.cgroups import CgroupDir

NOSUID, NODEV, NOEXEC, RDONLY = mounts.MS_NOSUID, mounts.MS_NODEV, mounts.MS_NOEXEC, mounts.MS_RDONLY
RUN_SIZE = "20%"
"""/run's size, as systemd-nspawn's (of the host's RAM; the pages count against the CT's
memory limit anyway)."""
LOCK_SIZE = "5m"
SYSTEMD_HIERARCHY = "name=systemd"


def build(root_fd: int, owner: tuple[int, int], groups: Sequence[CgroupDir],
          host_dir: str | None) -> None:
    """Mount /run, /run/lock, /run/host and /sys/fs/cgroup below the CT root ``root_fd``."""
    uid, gid = owner
    safefs.mount_at(root_fd, "run", "tmpfs", "tmpfs", NOSUID | NODEV,
                    f"mode=755,size={RUN_SIZE},nr_inodes=400k,uid={uid},gid={gid}")
    safefs.mount_at(root_fd, "run/lock", "tmpfs", "tmpfs", NOSUID | NODEV | NOEXEC,
                    f"mode=1777,size={LOCK_SIZE},uid={uid},gid={gid}")
    if host_dir is not None:
        safefs.mount_at(root_fd, "run/host", host_dir, None, mounts.MS_BIND)
        safefs.remount_at(root_fd, "run/host", RDONLY | NOSUID | NODEV | NOEXEC)
    _cgroups(root_fd, owner, groups)


def _cgroups(root_fd: int, owner: tuple[int, int], groups: Sequence[CgroupDir]) -> None:
    unified = next((g for g in groups if g.version == 2), None)
    named = next((g for g in groups if g.version == 1 and g.key == SYSTEMD_HIERARCHY), None)
    if not any(g.version == 1 for g in groups):
        if unified is not None:  # cgroup v2 only: the CT's group is the whole hierarchy
            _bind_group(root_fd, "sys/fs/cgroup", unified)
        return
    uid, gid = owner
    safefs.mount_at(root_fd, "sys/fs/cgroup", "tmpfs", "tmpfs", NOSUID | NODEV | NOEXEC,
                    f"mode=755,size=1m,uid={uid},gid={gid}")
    if named is not None:
        _bind_group(root_fd, "sys/fs/cgroup/systemd", named)
    if unified is not None:
        _bind_group(root_fd, "sys/fs/cgroup/unified", unified)
    # Read-only, as systemd-nspawn leaves it: the CT's init must not mount the host's
    # controller hierarchies beside them (their groups above the CT's are the host's).
    safefs.remount_at(root_fd, "sys/fs/cgroup", RDONLY | NOSUID | NODEV | NOEXEC)


def _bind_group(root_fd: int, path: str, group: CgroupDir) -> None:
    safefs.mount_at(root_fd, path, str(group.directory), None, mounts.MS_BIND)
    safefs.remount_at(root_fd, path, NOSUID | NODEV | NOEXEC, clear=RDONLY)
