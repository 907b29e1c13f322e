"""The CT's file system view, built in its new mount namespace before the root switch.

Everything is mounted through :mod:`vzcore.linux.safefs`, so a link the CT planted in its
own tree (``/proc -> /``) is resolved inside the CT root and never redirects a mount onto
the host.  The layout follows what LXC calls "mixed" /proc and /sys and runc's defaults.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable

from vzcore.defaults import DEV_SHM_SIZE
from vzcore.errors import KernelError, VzError
from vzcore.linux import mounts, safefs
from vzcore.linux.devnodes import DEV_NODES, TTY_GID

NOSUID, NODEV, NOEXEC, RDONLY = mounts.MS_NOSUID, mounts.MS_NODEV, mounts.MS_NOEXEC, mounts.MS_RDONLY

# DEV_NODES: character devices every CT gets (major, minor), made by the host's root in the
# CT's own /dev tmpfs and owned by the CT's root, as LXC does for privileged containers.
# Never bind mounts of the host's nodes: a CT's root (or its systemd, fixing /dev/console's
# owner) that chmods or chowns its /dev/null must change its own node, not the host's.

DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}

MASKED = (
    "proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list", "proc/timer_stats",
    "proc/sched_debug", "proc/acpi", "proc/asound", "proc/scsi", "proc/kmsg",
    "sys/firmware", "sys/devices/virtual/powercap", "sys/kernel/debug", "sys/kernel/security",
)
"""Host information a CT must not see: files get the CT's /dev/null over them, directories an
empty read-only tmpfs."""

READ_ONLY = ("proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs")
"""Kernel knobs a CT may read but not write (the namespaced /proc/sys/net is re-bound
writable)."""

WRITABLE_AGAIN = ("proc/sys/net",)


def build(root: str, owner: tuple[int, int], console: tuple[str, int] | None = None,
          tty_gid: int | None = None, *, own_mount_namespace: bool = True,
          block_nodes: Iterable[tuple[str, int]] = ()) -> None:
    """Mount /proc, /sys, /dev and friends below ``root`` (the CT's root, host path) and
    leave the working directory there, for :func:`vzcore.linux.mounts.pivot_to_cwd`.

    This runs as the host's root, in the CT's new mount namespace (owned by the host's
    user namespace: a CT in a user namespace enters it only after the root switch, which
    locks all of these mounts).  ``owner`` is the host (uid, gid) of the CT's root: it
    owns the file systems made here for the CT (/dev, /dev/shm).  ``console`` is the host
    path of the CT's console pty (:mod:`vzcore.lifecycle.console`) and a descriptor of it
    this process holds; the pty is bound on /dev/console.  ``tty_gid`` is the host GID of
    the CT's ``tty`` group (``Container.tty_group``; by default the one of a CT whose IDs
    are one range from ``owner``), the group of its devpts terminals.  ``block_nodes``:
    ``(name, st_rdev)`` of block nodes to make in /dev besides
    (:data:`vzcore.linux.devnodes.BLOCK_NODES_OPTION`).

    Without ``own_mount_namespace`` (a CT sharing the host's or joining another one) only
    ``root`` is made private, not ``/``: what is mounted below it never propagates out,
    and one detaching unmount of ``root`` removes all of it.
    """
    if own_mount_namespace:
        mounts.make_private("/")
    elif mounts.is_mount_point(root):
        mounts.make_private(root)  # before the bind below: that must not propagate either
    # nodev: a device node in the private area (a template's, or one a host tool put
    # there) must not open the host's device; the CT's devices live on /dev's own mounts.
    mounts.bind(root, root, extra=NODEV)
    if not own_mount_namespace:
        mounts.make_private(root)
    root_fd = safefs.open_root(root)
    try:
        safefs.mount_at(root_fd, "proc", "proc", "proc", NOSUID | NODEV | NOEXEC)
        safefs.mount_at(root_fd, "sys", "sysfs", "sysfs", NOSUID | NODEV | NOEXEC | RDONLY)
        _build_dev(root_fd, owner, owner[1] + TTY_GID if tty_gid is None else tty_gid,
                   block_nodes)
        _bind_console(root_fd, console)
        _mask(root_fd)
        _read_only(root_fd)
        os.fchdir(root_fd)
    finally:
        os.close(root_fd)


def _build_dev(root_fd: int, owner: tuple[int, int], tty_gid: int,
               block_nodes: Iterable[tuple[str, int]] = ()) -> None:
    uid, gid = owner
    safefs.mount_at(root_fd, "dev", "tmpfs", "tmpfs", NOSUID | mounts.MS_STRICTATIME,
                    f"mode=755,size=65536k,uid={uid},gid={gid}")
    with safefs.opened(root_fd, "dev", os.O_PATH | os.O_DIRECTORY) as dev_fd:
        # The tmpfs was mounted by the host's root, so its nodes open in a user namespace
        # too (only mounts made inside one are nodev); the devices plugin gates access.
        for name, (major, minor) in DEV_NODES.items():
            os.mknod(name, stat.S_IFCHR | 0o666, os.makedev(major, minor), dir_fd=dev_fd)
            os.chown(name, uid, gid, dir_fd=dev_fd, follow_symlinks=False)
            os.chmod(name, 0o666, dir_fd=dev_fd, follow_symlinks=False)  # not the umask's
        for name, target in DEV_LINKS.items():
            os.symlink(target, name, dir_fd=dev_fd)
            os.chown(name, uid, gid, dir_fd=dev_fd, follow_symlinks=False)
        for name, device in block_nodes:
            if not name or "/" in name or name.startswith(".") or name in DEV_NODES:
                raise VzError(f"cannot make /dev/{name!r} in the CT: not a plain node name")
            os.mknod(name, stat.S_IFBLK | 0o600, device, dir_fd=dev_fd)
            os.chown(name, uid, gid, dir_fd=dev_fd, follow_symlinks=False)
    safefs.mount_at(root_fd, "dev/pts", "devpts", "devpts", NOSUID | NOEXEC,
                    f"newinstance,ptmxmode=0666,mode=0620,gid={tty_gid}")
    # Bounded (not tmpfs's half of the host's RAM); the beancounters plugin may resize it.
    safefs.mount_at(root_fd, "dev/shm", "tmpfs", "tmpfs", NOSUID | NODEV,
                    f"mode=1777,size={DEV_SHM_SIZE},uid={uid},gid={gid}")
    safefs.mount_at(root_fd, "dev/mqueue", "mqueue", "mqueue", NOSUID | NODEV | NOEXEC)


def _bind_console(root_fd: int, console: tuple[str, int] | None) -> None:
    """/dev/console: the CT's console pty, made by the core at start and kept open on the
    host (systemd's container interface asks for that); never the host's console.
    Without one (a start that made none) it writes to the CT's own /dev/null.

    The held descriptor was opened in vzctl's mount namespace, which a bind mount here
    cannot take as its source (EINVAL); so the path is opened again in this namespace
    and bound only if it is the very pty held (same device and inode), never another
    terminal that took its place."""
    if console is None:
        _bind_ct_null(root_fd, "dev/console")
        return
    path, held = console
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        found, wanted = os.fstat(fd), os.fstat(held)
        if (found.st_dev, found.st_ino, found.st_rdev) != (wanted.st_dev, wanted.st_ino, wanted.st_rdev):
            raise KernelError(f"bind the console pty {path} (it is no longer the pty made for "
                              "this CT) on", "dev/console", errno.ENXIO)
        safefs.mount_at(root_fd, "dev/console", f"/proc/self/fd/{fd}", None, mounts.MS_BIND,
                        kind="file")
    finally:
        os.close(fd)


def _bind_ct_null(root_fd: int, path: str) -> None:
    """Bind the CT's own /dev/null (made by :func:`_build_dev`) on ``path``."""
    with safefs.opened(root_fd, "dev/null", os.O_PATH | os.O_NOFOLLOW) as null:
        if not stat.S_ISCHR(os.fstat(null).st_mode):
            raise KernelError("bind the CT's /dev/null on", path, errno.ENODEV)
        safefs.mount_at(root_fd, path, f"/proc/self/fd/{null}", None, mounts.MS_BIND, kind="file")


def _lookup(root_fd: int, path: str) -> int | None:
    """The file type of ``path`` inside the root, or None if it does not exist."""
    try:
        with safefs.opened(root_fd, path, os.O_PATH | os.O_NOFOLLOW) as fd:
            return stat.S_IFMT(os.fstat(fd).st_mode)
    except (OSError, KernelError):
        return None


def _mask(root_fd: int) -> None:
    for path in MASKED:
        kind = _lookup(root_fd, path)
        if kind == stat.S_IFDIR:
            safefs.mount_at(root_fd, path, "tmpfs", "tmpfs", RDONLY | NOSUID | NODEV | NOEXEC,
                            "size=0,mode=555")
        elif kind is not None:
            _bind_ct_null(root_fd, path)


def _read_only(root_fd: int) -> None:
    for path in READ_ONLY:
        if _lookup(root_fd, path) is not None:
            safefs.bind_in_place(root_fd, path)
            safefs.remount_at(root_fd, path, RDONLY | NOSUID | NODEV | NOEXEC)
    for path in WRITABLE_AGAIN:
        if _lookup(root_fd, path) is not None:
            safefs.bind_in_place(root_fd, path, recursive=False)
            safefs.remount_at(root_fd, path, NOSUID | NODEV | NOEXEC, clear=RDONLY)
