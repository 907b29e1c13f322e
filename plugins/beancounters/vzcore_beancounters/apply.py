"""Telling the kernel: a :class:`~vzcore_beancounters.plan.Plan`'s settings, applied.

Each function is one kernel interface: cgroup files, ``prlimit(2)`` on the CT's
processes, the IPC sysctls of the CT's IPC namespace, and remounts of the CT's devpts and
``/dev/shm``.  Errors name the CT, the beancounter and the kernel's reason.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterable, Mapping, Sequence

from vzcore.errors import KernelError, VzError
from vzcore.linux import mounts, namespaces
from vzcore.linux.cgroups import CgroupSet
from vzcore_beancounters.plan import CgroupWrite

MEMORY_V1 = "memory.limit_in_bytes"
MEMSW_V1 = "memory.memsw.limit_in_bytes"


def _describe(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def _write(ctid: int, cgroups: CgroupSet, write: CgroupWrite) -> bool:
    """Write one file; ``False`` when an optional file is missing or ignored."""
    if write.optional and not cgroups.has_file(write.controller, write.filename):
        return False
    try:
        cgroups.write_limit(write.controller, write.filename, write.value)
    except KernelError as exc:
        raise VzError(f"CT {ctid}: cannot set {write.resource}: {write.filename} = "
                      f"{_describe(write.value)}: {os.strerror(exc.errno)}"
                      + ("; the CT uses more than that now" if exc.errno == errno.EBUSY else ""),
                      exit_code=exc.exit_code) from exc
    if write.verify and write.value is not None:
        return cgroups.read_int(write.controller, write.filename) == write.value
    return True


def apply_cgroups(ctid: int, cgroups: CgroupSet, writes: Sequence[CgroupWrite]) -> set[str]:
    """Write ``writes``; returns the beancounters whose file the kernel lacks or ignores
    (accounted only on this host).

    cgroup v1 wants ``memory.memsw.limit_in_bytes >= memory.limit_in_bytes`` at every
    moment, so when RAM grows past the old RAM+swap limit, memsw is written first.
    """
    unenforced: set[str] = set()
    pending = list(writes)
    names = [w.filename for w in pending]
    if MEMORY_V1 in names and MEMSW_V1 in names:
        memory = pending[names.index(MEMORY_V1)]
        memsw = pending[names.index(MEMSW_V1)]
        current = cgroups.read_int("memory", MEMSW_V1) if cgroups.has_file("memory", MEMSW_V1) else None
        wanted = memory.value if memory.value is not None else float("inf")
        if current is not None and wanted > current:
            pending.remove(memsw)
            pending.insert(0, memsw)
    for write in pending:
        if not _write(ctid, cgroups, write) and write.value is not None:
            unenforced.add(write.resource)
    return unenforced


def _at_most(value: int, ceiling: int) -> int:
    if ceiling == resource.RLIM_INFINITY:
        return value
    return ceiling if value == resource.RLIM_INFINITY else min(value, ceiling)


def _prlimit(pid: int, which: int, value: tuple[int, int]) -> None:
    """Set one limit; without CAP_SYS_RESOURCE a hard limit cannot rise, so the values
    are capped at the process's current hard limit (stricter than asked, never looser)."""
    try:
        resource.prlimit(pid, which, value)
    except PermissionError:
        _soft, hard = resource.prlimit(pid, which)
        capped_hard = _at_most(value[1], hard)
        resource.prlimit(pid, which, (_at_most(value[0], capped_hard), capped_hard))


def apply_rlimits(pids: Iterable[int], limits: Mapping[str, tuple[int, int]]) -> None:
    """``prlimit(2)`` every process in ``pids`` (processes that exit meanwhile are fine)."""
    for pid in pids:
        for name, value in limits.items():
            try:
                _prlimit(pid, getattr(resource, name), value)
            except ProcessLookupError:
                break




def write_sysctls(sysctls: Mapping[str, int]) -> None:
    """Write IPC sysctls through ``/proc/sys``; they apply to the caller's IPC namespace."""
    for name, value in sysctls.items():
        path = "/proc/sys/" + name.replace(".", "/")
        with open(path, "w") as f:
            f.write(str(value))


def sysctls_in(pid: int, sysctls: Mapping[str, int], owner: tuple[int, int]) -> None:
    """Write IPC sysctls in the IPC namespace of process ``pid``.

    The kernel lets only the IPC namespace's own root write them (for a CT with a user
    namespace, the host UID its root maps to; the host's root reads them only), so the
    writing process takes that UID and GID as its effective IDs.  The CT itself cannot:
    its /proc/sys is mounted read-only.
    """
    if not sysctls:
        return
    uid, gid = owner

    def write() -> None:
        os.setegid(gid)
        os.seteuid(uid)
        write_sysctls(sysctls)

    namespaces.call_in(pid, ["ipc"], write)


def devpts_data(super_options: str, maximum: int) -> str:
    """Remount data for a devpts: its current options (``gid=5,mode=620,...``, from
    mountinfo) with ``max`` replaced; a devpts remount resets every option it is not given."""
    kept = [o for o in super_options.split(",")
            if o and o not in ("rw", "ro") and not o.startswith("max=")]
    return ",".join([*kept, f"max={maximum}"])


def remount(target: str, data: str) -> None:
    """Remount the file system at ``target`` with ``data``, keeping its mount flags."""
    flags = mounts.statvfs_flags(target)
    mounts.mount(None, target, None, mounts.MS_REMOUNT | flags, data)


def super_options(entries: Iterable[mounts.MountEntry], mount_point: str, fstype: str) -> str:
    """The super options of the last ``fstype`` mount at ``mount_point``."""
    found = [e for e in entries if e.mount_point == mount_point and e.fstype == fstype]
    if not found:
        raise VzError(f"no {fstype} is mounted at {mount_point}")
    return found[-1].super_options


def remount_in(pid: int, devpts_max: int | None, shm_size: int | str | None) -> None:
    """Change the devpts ``max`` and the /dev/shm size in the mount namespace of ``pid``
    (a running CT's init); a CT that unmounted either keeps what it has."""
    entries = mounts.mountinfo(pid)
    points = {(e.mount_point, e.fstype) for e in entries}
    data = None
    if devpts_max is not None and ("/dev/pts", "devpts") in points:
        data = devpts_data(super_options(entries, "/dev/pts", "devpts"), devpts_max)
    shm = shm_size is not None and ("/dev/shm", "tmpfs") in points

    def change() -> None:
        if data is not None:
            remount("/dev/pts", data)
        if shm:
            remount("/dev/shm", f"size={shm_size}")

    if data is not None or shm:
        namespaces.call_in(pid, ["mnt"], change)
