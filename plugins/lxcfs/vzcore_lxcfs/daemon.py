"""The one lxcfs of an installation: started, checked, restarted and stopped by vzctl.

One lxcfs serves every CT of a ``VZ_ROOT`` prefix.  Its files live in the prefix's run
directory (``/run/vz/lxcfs/``, or ``PREFIX/run/vz/lxcfs/``): the FUSE mount point
``mnt``, ``daemon`` (PID and start time, so a reused PID is never taken for it),
lxcfs's own pid file, the log, and the lock every vzctl takes before it looks at or
changes the daemon: the shared-daemon pattern of :mod:`vzcore.linux.daemon`, which also
runs lxcfs in a cgroup of its own (``CGROUP_PARENT/daemon-lxcfs``), out of the calling
vzctl's login session.  vzctl starts it when a CT with views starts and none runs, starts it
again when it finds it dead (a start, ``vzctl status``, ``vzlist``, ``vzctl set``), and
stops it when the last CT using it stops.  Which CTs use it is read from their state
files, not kept beside the daemon: a state file is the one record that a killed vzctl
cannot leave behind inconsistently.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from vzcore.errors import VzError
from vzcore.linux import mounts
from vzcore.linux.cgroups import CgroupSet
from vzcore.linux.daemon import Daemon
from vzcore.linux.daemon import pidfd as open_pidfd
from vzcore.linux.daemon import stop as stop_process
from vzcore.linux.procfs import ProcessId, command_name

PLUGIN = "lxcfs"
"""The plugin's name in state files (its entry-point name)."""

FILES = ("proc/cpuinfo", "proc/diskstats", "proc/loadavg", "proc/meminfo", "proc/stat",
         "proc/swaps", "proc/uptime", "proc/slabinfo", "sys/devices/system/cpu/online")
"""What lxcfs 5 serves that a CT gets bound over its own file, as LXC's lxcfs hook does."""

OPTIONS = ("-f", "-l", "--enable-pidfd")
"""Foreground (vzctl knows its PID), a per-CT /proc/loadavg, pidfds against PID reuse.
``--enable-cfs`` stays off: lxcfs would then count CPUs from the CFS quota while the cpu
plugin's /proc/cpuinfo and nproc follow the cpuset (docs/views.md)."""

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 0.5
"""Seconds lxcfs gets after SIGTERM before SIGKILL.  It is stopped only once no CT uses
it and its mount is detached, and it keeps no state: SIGKILL loses nothing.  SIGTERM alone
ends it at once only when no mount of its file system is left; while a CT that just died
still has a mount namespace with its binds, lxcfs waited up to ~5 s (its load-average
thread's next wake-up), and every last-CT stop paid it."""
BINARY_KEY = "LXCFS_BINARY"
"""vz.conf: the lxcfs program (a name looked up in PATH, or a path); default ``lxcfs``."""


@attrs.frozen
class Place:
    """The daemon's files in one installation's run directory, and its cgroups
    (``None``: where the caller is; every vzctl command passes them)."""

    directory: Path
    cgroups: CgroupSet | None = None

    @property
    def daemon(self) -> Daemon:
        """The shared-daemon helper over these files."""
        return Daemon(self.directory, record_name="daemon", lock_name="lock",
                      log_name="lxcfs.log", cgroups=self.cgroups)

    @property
    def mountpoint(self) -> Path:
        return self.directory / "mnt"

    @property
    def daemon_file(self) -> Path:
        return self.daemon.record_file

    @property
    def pidfile(self) -> Path:
        """lxcfs's own pid file (``-p``): finds an lxcfs whose start vzctl never recorded."""
        return self.directory / "lxcfs.pid"

    @property
    def log(self) -> Path:
        return self.daemon.log

    @property
    def lockfile(self) -> Path:
        return self.daemon.lockfile


def place(run_dir: Path, cgroups: CgroupSet | None = None) -> Place:
    """Where the daemon of the installation with run directory ``run_dir`` keeps its files
    (``cgroups``: where it runs, :func:`vzcore.ctgroups.daemon_groups`)."""
    return Place(run_dir / "lxcfs", cgroups)


def binary(configured: str | None = None) -> str | None:
    """The lxcfs program's path (``configured``: vz.conf's :data:`BINARY_KEY`), or ``None``
    when it is not installed."""
    name = configured or "lxcfs"
    path = os.environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return shutil.which(name, path=path)


@contextmanager
def locked(where: Place) -> Iterator[None]:
    """Hold the daemon's lock (every start, check, restart and stop takes it)."""
    with where.daemon.locked():
        yield


def recorded(where: Place) -> ProcessId | None:
    """The daemon vzctl started, if it still runs (dead or never started: ``None``)."""
    return where.daemon.running()


_held: dict[ProcessId, tuple[int, str]] = {}
"""The mount namespace of each daemon this vzctl started CTs with, held open (one
descriptor per daemon, however many CTs a ``vzctl boot-all`` starts)."""


def hold_namespace(process: ProcessId) -> str:
    """The daemon's mount namespace as ``mnt:[INODE]``, for a CT's init to check the one
    it joins against (:func:`open_namespace`).

    Checked with a pidfd: opened (and its start time compared) before the namespace and
    still unsignalled after, the pidfd proves the namespace was this very daemon's.  It
    stays open in this vzctl, so no other namespace can get its inode number while CTs
    started here may look for it.  (The CT's init cannot check the daemon itself: it was
    forked before the daemon was known, and in the CT's time namespace start times read
    differently.)
    """
    held = _held.get(process)
    if held is not None:
        return held[1]
    try:
        pidfd = open_pidfd(process)
    except ProcessLookupError:
        raise VzError(f"lxcfs (PID {process.pid}) died during the start") from None
    try:
        try:
            ns_fd = os.open(f"/proc/{process.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            ns_fd = -1
        if ns_fd < 0 or select.select([pidfd], [], [], 0)[0]:  # readable: it exited
            if ns_fd >= 0:
                os.close(ns_fd)
            raise VzError(f"lxcfs (PID {process.pid}) died during the start")
    finally:
        os.close(pidfd)
    name = f"mnt:[{os.fstat(ns_fd).st_ino}]"
    _held[process] = (ns_fd, name)
    return name


def open_namespace(pid: int, expected: str) -> int:
    """In a CT's init: a descriptor of daemon ``pid``'s mount namespace, refused unless it
    is ``expected`` (what :func:`hold_namespace` recorded on the host)."""
    try:
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0 and f"mnt:[{os.fstat(fd).st_ino}]" == expected:
        return fd
    if fd >= 0:
        os.close(fd)
    raise VzError(f"lxcfs (PID {pid}) is not the daemon checked at the start (it died "
                  "meanwhile); start the CT again")


def _mount_ids(mountpoint: Path) -> list[int]:
    target = str(mountpoint)
    return [m.mount_id for m in mounts.mountinfo() if m.mount_point == target]


class Launcher:
    """What touches the kernel: the lxcfs process and its mount (a test double replaces it)."""

    def serving(self, where: Place) -> bool:
        """Whether the mount point answers: an empty directory has no ``proc`` and the
        mount of a dead lxcfs says ENOTCONN."""
        try:
            os.stat(where.mountpoint / "proc" / "meminfo")
        except OSError:
            return False
        return True

    def spawn(self, where: Place, program: str) -> ProcessId:
        """Start lxcfs on the mount point (in its own cgroups), record it in ``daemon`` and
        wait until it serves."""
        helper = where.daemon
        child, process = helper.spawn(
            [program, *OPTIONS, "-p", str(where.pidfile), str(where.mountpoint)],
            stdout_to_log=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while process.is_alive():
            if self.serving(where):
                return process
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if child.poll() is None:
            self.end(process)
        child.wait()
        raise VzError(f"lxcfs ({program}) did not start serving {where.mountpoint} "
                      f"(exit status {child.returncode}); see {where.log}")

    def end(self, process: ProcessId) -> None:
        """Stop an lxcfs: SIGTERM (it unmounts itself), SIGKILL if it lingers."""
        stop_process(process, STOP_TIMEOUT)

    def unmount(self, mountpoint: Path) -> None:
        """Unmount whatever is mounted on the mount point (stacked mounts of two lxcfs
        that raced, or of a dead one)."""
        for _attempt in range(16):
            if not _mount_ids(mountpoint):
                return
            mounts.umount(mountpoint, detach=True)
        raise VzError(f"cannot unmount the lxcfs mount point {mountpoint}")


def serving(where: Place) -> bool:
    """Whether the daemon's mount answers."""
    return Launcher().serving(where)


def healthy(where: Place) -> ProcessId | None:
    """The running daemon when it runs and its mount answers, else ``None``."""
    process = recorded(where)
    return process if process is not None and serving(where) else None


def _strays(where: Place) -> list[ProcessId]:
    """An lxcfs of this mount point that vzctl did not record (killed between starting it
    and writing ``daemon``): found through lxcfs's own pid file."""
    try:
        pid = int(where.pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    process = ProcessId.of(pid)
    if process is None or command_name(pid) != "lxcfs":
        return []
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    return [process] if str(where.mountpoint).encode() in argv else []


def clear(where: Place) -> None:
    """Stop the daemon (recorded or stray) and remove its mount and pid files; idempotent.
    The caller holds the lock."""
    launcher = Launcher()
    process = recorded(where)
    # Unmounted first: with its mount gone (and no CT's bind left) lxcfs's FUSE session
    # ends at once, where a SIGTERM alone waits about 4 s for its load-average thread.
    launcher.unmount(where.mountpoint)
    for old in ([process] if process is not None else []) + _strays(where):
        launcher.end(old)
    launcher.unmount(where.mountpoint)
    for path in (where.daemon_file, where.pidfile):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def start(where: Place, program: str) -> ProcessId:
    """Start lxcfs and wait until it serves; the caller holds the lock and has cleared
    what a dead one left."""
    where.mountpoint.mkdir(mode=0o755, parents=True, exist_ok=True)
    return Launcher().spawn(where, program)


def ensure(where: Place, program: str) -> tuple[ProcessId, bool]:
    """The serving daemon, started (or started again) when needed; ``True`` when it was
    (re)started now.  Takes the lock."""
    with locked(where):
        process = healthy(where)
        if process is not None:
            return process, False
        clear(where)
        return start(where, program), True


@attrs.frozen
class User:
    """A CT of the installation whose state file records the lxcfs plugin."""

    ctid: int
    init: ProcessId | None
    files: tuple[str, ...]
    cgroups: CgroupSet | None


def users(run_dir: Path) -> list[User]:
    """CTs that use the daemon: their state file holds the plugin's record and their init
    runs, or a start that recorded it is still going on (its vzctl runs)."""
    from vzcore.records import RecordError
    from vzcore.runtime import states
    from vzcore_lxcfs.record import LxcfsRecord

    found: list[User] = []
    for state in states(run_dir):
        if not (state.is_running or state.starting):
            continue
        try:
            record = state.record(PLUGIN, LxcfsRecord)
        except RecordError:
            continue  # a record this plugin cannot read names no files to bind
        if record is not None:
            found.append(User(state.ctid, state.init, record.files, state.cgroups))
    return found


def stop_unless_used(where: Place, run_dir: Path, leaving: int) -> bool:
    """Stop the daemon when no CT but ``leaving`` uses it; True when it was stopped."""
    with locked(where):
        if any(user.ctid != leaving for user in users(run_dir)):
            return False
        clear(where)
        where.daemon.remove_cgroups()  # lxcfs is gone: its group is empty
        # Nothing stays: the lock file goes last (a vzctl waiting on it locks anew).
        for name in ("mnt", "lxcfs.log", "rebinding", "lock"):
            path = where.directory / name
            try:
                path.rmdir() if name == "mnt" else path.unlink()
            except FileNotFoundError:
                pass
        try:
            where.directory.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                raise
        return True
