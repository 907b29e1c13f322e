"""The answers of the seccomp supervisor (:mod:`vzcore.linux.notifyd`) to a CT's
intercepted ``statfs``, ``fstatfs`` and ``sysinfo`` (and ``quotactl``: see
:mod:`vzcore.linux.notify_quota`).

Each CT is a :class:`CtFigures`: where its disk figures are (two files holding the bytes
used and the byte limit, a btrfs qgroup's ``referenced`` and ``max_referenced`` in sysfs),
its cgroups (memory, pids) and its init.  :func:`answer` handles one notification:

``statfs(path, buf)``, ``fstatfs(fd, buf)``
    the file is looked up as the caller sees it (an absolute path below the caller's root
    with ``openat2(RESOLVE_IN_ROOT)``, a relative one from its working directory, a
    descriptor through ``/proc/PID/fd``); when it is on the CT's root file system (the same
    ``st_dev`` as the CT's ``/``) the kernel's own ``struct statfs`` of that file is
    returned with size and free space replaced by the limit and the limit minus use;
    any other file (``/proc``, ``/dev``, a mount of the CT's own), a file the lookup does
    not find, or a disk without limit: the call continues in the kernel unchanged.
``sysinfo(info)``
    the kernel's ``struct sysinfo`` with RAM and swap (total and free) from the CT's
    memory cgroup limits and usage (where a limit is set), ``procs`` from its task count and
    ``uptime`` since its init started; load averages stay the kernel's.

Figures are read at each call (a few small sysfs/cgroupfs files): a limit changed on the
running CT shows at once.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from vzcore.linux import seccomp, seccomp_notify
from vzcore.linux.cgroups import UNLIMITED, CgroupSet, parse_number
from vzcore.linux.procfs import ProcessId
from vzcore.linux.seccomp_notify import CallerMemory, Notification

_libc = ctypes.CDLL(None, use_errno=True)
_NATIVE = seccomp.ARCHES_OF_HOST.get(os.uname().machine, ("x86_64",))[0]
NUMBERS = {name: seccomp.SYSCALLS[name][_NATIVE]
           for name in ("statfs", "fstatfs", "sysinfo", "quotactl")}
CALLS = tuple(NUMBERS)
"""The calls a supervisor can answer."""
DISK_FIGURES_OPTION = "disk_figures"
"""The ``run.options`` key under which a layout's ``vz_pre_start`` names the files of its
figures for a CT whose statfs shows too much (``{"used_file": ..., "limit_file": ...}``,
bytes; a btrfs qgroup's sysfs files): the notify plugin answers statfs with them."""
QUOTACTL_OPTION = "quotactl_for_root"
"""The ``run.options`` key under which the disk plugin's ``vz_pre_start`` asks (``True``)
for the CT root's quotactl(2) to be made from the host (:mod:`vzcore.linux.notify_quota`)."""

_SYS_OPENAT2 = 437  # the same on x86_64 and aarch64
_RESOLVE_IN_ROOT = 0x10
_RESOLVE_NO_MAGICLINKS = 0x02
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class _Reader:
    """Small kernel files (cgroup, sysfs) kept open and read with ``pread``: an answer
    reads half a dozen of them, and opening each anew cost more than the rest of it."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}

    def text(self, path: str, size: int = 64) -> str | None:
        fd = self.fds.get(path)
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            self.fds[path] = fd
        try:
            return os.pread(fd, size, 0).decode(errors="replace")
        except OSError:  # the group or qgroup went away: opened again next time
            os.close(self.fds.pop(path))
            return None

    def number(self, path: str) -> int | None:
        text = self.text(path)
        try:
            return None if text is None else parse_number(text.strip())
        except ValueError:
            return None

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


@attrs.define
class CtFigures:
    """What the supervisor knows of one CT.

    :ivar used_file: a file with the bytes the CT's disk holds (``None``: statfs is not
        answered), and
    :ivar limit_file: one with its byte limit (0 or 2**64-1: none).
    :ivar cgroups: the CT's cgroups (``None``: sysinfo is not answered).
    :ivar init: the CT's init (its root and start time); set by the start's hand-over.
    :ivar quota: the CT root's quotactl(2) on its root file system is made from the host.
    """

    ctid: int
    used_file: str | None = None
    limit_file: str | None = None
    cgroups: CgroupSet | None = None
    init: ProcessId | None = None
    root_dev: int | None = None
    quota: bool = False
    _reader: _Reader = attrs.field(factory=_Reader, eq=False, repr=False)
    _paths: dict[tuple[str, str], str | None] = attrs.field(factory=dict, eq=False, repr=False)
    _shmem: tuple[float, int] = attrs.field(default=(0.0, 0), eq=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CtFigures:
        cgroups = data.get("cgroups")
        return cls(int(data["ctid"]), data.get("used_file"), data.get("limit_file"),
                   CgroupSet.from_json(cgroups) if cgroups else None,
                   quota=bool(data.get("quota")))

    def to_json(self) -> dict[str, Any]:
        return {"ctid": self.ctid, "used_file": self.used_file, "limit_file": self.limit_file,
                "cgroups": self.cgroups.to_json() if self.cgroups else None,
                "quota": self.quota}

    def calls(self) -> tuple[str, ...]:
        """The calls there is something to answer for."""
        return ((("statfs", "fstatfs") if self.used_file and self.limit_file else ())
                + (("sysinfo",) if self.cgroups is not None else ())
                + (("quotactl",) if self.quota else ()))

    def root_device(self) -> int | None:
        """``st_dev`` of the CT's ``/`` (as its init sees it), read once."""
        if self.root_dev is None and self.init is not None:
            try:
                self.root_dev = os.stat(f"/proc/{self.init.pid}/root/").st_dev
            except OSError:
                return None
            if not self.init.is_alive():  # the PID was reused: not the CT's root
                self.root_dev = None
        return self.root_dev

    def disk(self) -> tuple[int, int] | None:
        """Bytes used and the byte limit; ``None`` without a limit."""
        if not self.used_file or not self.limit_file:
            return None
        used_text = self._reader.text(self.used_file, 32)
        limit_text = self._reader.text(self.limit_file, 32)
        try:
            used, limit = int(used_text or ""), int(limit_text or "")
        except ValueError:
            return None
        return None if limit in (0, 2**64 - 1) else (used, limit)

    def read(self, controller: str, filename: str) -> int | None:
        """A number from one of the CT's cgroup files (as :meth:`CgroupSet.read_int`)."""
        key = (controller, filename)
        if key not in self._paths:
            d = self.cgroups.dir_for(controller) if self.cgroups is not None else None
            self._paths[key] = str(d.file(filename)) if d is not None else None
        path = self._paths[key]
        return None if path is None else self._reader.number(path)

    def shmem(self) -> int:
        """The memory cgroup's ``shmem`` (v1: ``total_shmem``), read at most once a
        second (``memory.stat`` is long and costs the kernel a walk)."""
        when, value = self._shmem
        now = time.monotonic()
        if now - when >= 1.0 and self.cgroups is not None:
            d = self.cgroups.dir_for("memory")
            text = self._reader.text(str(d.file("memory.stat")), 16384) if d else None
            stat = dict(line.split(" ", 1) for line in (text or "").splitlines() if " " in line)
            try:
                value = int(stat.get("shmem", stat.get("total_shmem", "0")))
            except ValueError:
                value = 0
            self._shmem = (now, value)
        return value

    def close(self) -> None:
        """Close the files kept open (the CT is dropped)."""
        self._reader.close()


def answer(listener: int, ct: CtFigures, notification: Notification) -> None:
    """Answer (or let continue) one intercepted call of a process of ``ct``."""
    memory = CallerMemory.open(listener, notification)
    if memory is None:
        return  # gone, or interrupted meanwhile: nobody waits for an answer
    with memory:
        try:
            if notification.nr == NUMBERS["sysinfo"]:
                info = sysinfo_of(ct)
                memory.write(notification.args[0], seccomp_notify.sysinfo_struct(info))
                seccomp_notify.reply(listener, notification.id)
                return
            if notification.nr in (NUMBERS["statfs"], NUMBERS["fstatfs"]):
                result = statfs_of(ct, memory, notification)
                if result is None:
                    seccomp_notify.continue_call(listener, notification.id)
                    return
                memory.write(notification.args[1], seccomp_notify.statfs_struct(result))
                seccomp_notify.reply(listener, notification.id)
                return
            if notification.nr == NUMBERS["quotactl"] and ct.quota:
                _answer_quotactl(listener, ct, memory, notification)
                return
        except OSError as exc:
            seccomp_notify.reply(listener, notification.id, error=exc.errno or errno.EFAULT)
            return
    seccomp_notify.continue_call(listener, notification.id)  # not a call of ours


def _answer_quotactl(listener: int, ct: CtFigures, memory: CallerMemory,
                     notification: Notification) -> None:
    from vzcore.linux import notify_quota

    root_dev = ct.root_device()
    if ct.init is None or root_dev is None:
        seccomp_notify.continue_call(listener, notification.id)
        return
    try:
        value, data, address = notify_quota.answer_quotactl(memory, notification, ct.init.pid,
                                                            root_dev, open_as)
    except notify_quota.Continue:
        seccomp_notify.continue_call(listener, notification.id)
        return
    if data is not None:
        memory.write(address, data)
    seccomp_notify.reply(listener, notification.id, value)


def _openat2(dirfd: int, path: bytes, resolve: int) -> int:
    how = (ctypes.c_uint64 * 3)(os.O_PATH | os.O_CLOEXEC, 0, resolve)
    fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(path),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def _open_target(memory: CallerMemory, notification: Notification) -> int | None:
    """An ``O_PATH`` descriptor of the file the caller names, looked up as it would (see
    the module's description); ``None`` when the lookup fails (the kernel then gives the
    caller its own error)."""
    pid = notification.pid
    try:
        if notification.nr == NUMBERS["fstatfs"]:
            fd = notification.args[0] & 0xFFFFFFFF
            return os.open(f"/proc/{pid}/fd/{fd}", os.O_PATH | os.O_CLOEXEC)
        path = memory.read_string(notification.args[0])
    except OSError:
        return None
    return open_as(pid, path)


def open_as(pid: int, path: bytes) -> int | None:
    """An ``O_PATH`` descriptor of ``path`` looked up as process ``pid`` would; ``None``
    when the lookup fails."""
    if not path:
        return None
    base = "root" if path.startswith(b"/") else "cwd"
    try:
        dirfd = os.open(f"/proc/{pid}/{base}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # Below the caller's root: absolute symbolic links and ".." stay in it.  A relative
        # path that climbs out of the working directory is looked up plainly (its "..",
        # taken at the CT's root, stays there: the CT's root is its namespace's root).
        if base == "root":
            return _openat2(dirfd, path.lstrip(b"/") or b".", _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        return os.open(path, os.O_PATH | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return None
    finally:
        os.close(dirfd)


def kernel_statfs(fd: int) -> bytes:
    """The kernel's ``struct statfs`` of the file open as ``fd``."""
    buffer = ctypes.create_string_buffer(seccomp_notify.STATFS_SIZE)
    if _libc.fstatfs(ctypes.c_int(fd), buffer) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return buffer.raw


def statfs_of(ct: CtFigures, memory: CallerMemory,
              notification: Notification) -> dict[str, int] | None:
    """The ``struct statfs`` fields to answer with, or ``None`` to let the call continue."""
    disk = ct.disk()
    root_dev = ct.root_device()
    if disk is None or root_dev is None:
        return None
    fd = _open_target(memory, notification)
    if fd is None:
        return None
    try:
        if os.fstat(fd).st_dev != root_dev:
            return None
        fields = seccomp_notify.statfs_fields(kernel_statfs(fd))
    except OSError:
        return None
    finally:
        os.close(fd)
    return with_limit(fields, *disk)


def with_limit(fields: Mapping[str, int], used: int, limit: int) -> dict[str, int]:
    """``fields`` of the kernel's statfs with the size ``limit`` bytes and the free
    space ``limit - used`` (never below zero)."""
    bsize = fields.get("frsize") or fields.get("bsize") or 4096
    free = max(0, limit - used) // bsize
    return {**fields, "blocks": limit // bsize, "bfree": free, "bavail": free}


def kernel_sysinfo() -> dict[str, int]:
    """The kernel's ``struct sysinfo`` (of the supervisor's own namespaces)."""
    buffer = ctypes.create_string_buffer(seccomp_notify.SYSINFO.size)
    if _libc.sysinfo(buffer) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return seccomp_notify.sysinfo_fields(buffer.raw)


def _limited(value: int | None) -> int | None:
    return None if value is None or value >= UNLIMITED else value


def memory_of(cg: CgroupSet, read: Callable[[str, str], int | None] | None = None
              ) -> tuple[int | None, int, int | None, int]:
    """RAM limit, RAM use, swap limit, swap use in bytes (``None``: no limit), from cgroup
    v2's ``memory.max``/``memory.swap.max`` or v1's ``memory.limit_in_bytes`` and
    ``memory.memsw.*`` (RAM plus swap: the swap part is the difference); ``read`` reads
    a file (:meth:`CgroupSet.read_int` by default)."""
    read = read or cg.read_int
    if cg.version == 2:
        return (_limited(read("memory", "memory.max")),
                read("memory", "memory.current") or 0,
                _limited(read("memory", "memory.swap.max")),
                read("memory", "memory.swap.current") or 0)
    ram = _limited(read("memory", "memory.limit_in_bytes"))
    used = read("memory", "memory.usage_in_bytes") or 0
    memsw = _limited(read("memory", "memory.memsw.limit_in_bytes"))
    memsw_used = read("memory", "memory.memsw.usage_in_bytes")
    swap = None if memsw is None or ram is None else max(0, memsw - ram)
    return ram, used, swap, max(0, (memsw_used or used) - used)


def sysinfo_of(ct: CtFigures) -> dict[str, int]:
    """The ``struct sysinfo`` fields to answer with (``mem_unit`` 1: bytes)."""
    info = kernel_sysinfo()
    unit = info["mem_unit"] or 1
    host = {key: info[key] * unit for key in ("totalram", "freeram", "sharedram", "bufferram",
                                             "totalswap", "freeswap")}
    result = {**info, **host, "mem_unit": 1, "totalhigh": 0, "freehigh": 0}
    if ct.cgroups is not None:
        ram, used, swap, swap_used = memory_of(ct.cgroups, ct.read)
        if ram is not None:
            total = min(ram, host["totalram"])
            result.update(totalram=total, freeram=max(0, total - used), bufferram=0,
                          sharedram=min(ct.shmem(), total))
        if swap is not None:
            total_swap = min(swap, host["totalswap"])
            result.update(totalswap=total_swap, freeswap=max(0, total_swap - swap_used))
        tasks = ct.read("pids", "pids.current")
        result["procs"] = min(ct.cgroups.task_count() if tasks is None else tasks, 0xFFFF)
    if ct.init is not None:
        started = ct.init.start_time / _CLK_TCK
        result["uptime"] = max(0, int(time.clock_gettime(time.CLOCK_BOOTTIME) - started))
    return result
