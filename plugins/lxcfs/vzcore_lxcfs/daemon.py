"""The one lxcfs of an installation: started, checked, restarted and stopped by vzctl.

One lxcfs serves every CT of a ``VZ_ROOT`` prefix.  Its files live in the prefix's run
directory (``/run/vz/lxcfs/``, or ``PREFIX/run/vz/lxcfs/``): the FUSE mount point
``mnt``, ``daemon`` (PID and start time, so a reused PID is never taken for it),
lxcfs's own pid file, the log, and the lock every vzctl takes before it looks at or
changes the daemon.  vzctl starts it when a CT with views starts and none runs, starts it
again when it finds it dead (a start, ``vzctl status``, ``vzlist``, ``vzctl set``), and
stops it when the last CT using it stops.  Which CTs use it is read from their state
files, not kept beside the daemon: a state file is the one record that a killed vzctl
cannot leave behind inconsistently.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from vzcore.errors import VzError
from vzcore.linux import mounts
from vzcore.linux.procfs import ProcessId, command_name, kill, wait_exit

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
STOP_TIMEOUT = 5.0
BINARY_KEY = "LXCFS_BINARY"
"""vz.conf: the lxcfs program (a name looked up in PATH, or a path); default ``lxcfs``."""


@attrs.frozen
class Place:
    """The daemon's files in one installation's run directory."""

    directory: Path

    @property
    def mountpoint(self) -> Path:
        return self.directory / "mnt"

    @property
    def daemon_file(self) -> Path:
        return self.directory / "daemon"

    @property
    def pidfile(self) -> Path:
        return self.directory / "lxcfs.pid"

    @property
    def log(self) -> Path:
        return self.directory / "lxcfs.log"

    @property
    def lockfile(self) -> Path:
        return self.directory / "lock"


def place(run_dir: Path) -> Place:
    """Where the daemon of the installation with run directory ``run_dir`` keeps its files."""
    return Place(run_dir / "lxcfs")


def binary(configured: str | None = None) -> str | None:
    """The lxcfs program's path (``configured``: vz.conf's :data:`BINARY_KEY`), or ``None``
    when it is not installed."""
    name = configured or "lxcfs"
    path = os.environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return shutil.which(name, path=path)


@contextmanager
def locked(where: Place) -> Iterator[None]:
    """Hold the daemon's lock (every start, check, restart and stop takes it)."""
    while True:
        where.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(where.lockfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            continue  # the directory went with the last stop meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(where.lockfile).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # else the last stop removed the file while we waited: lock anew
                yield
                return
        finally:
            os.close(fd)


def recorded(where: Place) -> ProcessId | None:
    """The daemon vzctl started, if it still runs (dead or never started: ``None``)."""
    try:
        pid, start_time = (int(w) for w in where.daemon_file.read_text().split())
    except (OSError, ValueError):
        return None
    process = ProcessId(pid, start_time)
    return process if process.is_alive() else None


def recorded_pid(where: Place) -> int | None:
    """The recorded daemon's PID while a process has it, for the CT's init: its start time
    cannot be compared there (``/proc/PID/stat`` counts it in the reader's time namespace,
    and the CT's is shifted); a PID reused within the start would fail the binds."""
    try:
        pid = int(where.daemon_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if ProcessId.of(pid) is not None else None


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
        """Start lxcfs on the mount point, record it in ``daemon`` and wait until it
        serves."""
        with open(where.log, "ab") as log:
            child = subprocess.Popen(
                [program, *OPTIONS, "-p", str(where.pidfile), str(where.mountpoint)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/", close_fds=True,
                start_new_session=True,  # no terminal's hangup reaches it; vzctl may exit
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"})
        process = ProcessId.of(child.pid)
        if process is not None:
            where.daemon_file.write_text(f"{process.pid} {process.start_time}\n")
        deadline = time.monotonic() + READY_TIMEOUT
        while process is not None and process.is_alive():
            if self.serving(where):
                return process
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if child.poll() is None:
            self.end(ProcessId.of(child.pid) or ProcessId(child.pid, 0))
        child.wait()
        raise VzError(f"lxcfs ({program}) did not start serving {where.mountpoint} "
                      f"(exit status {child.returncode}); see {where.log}")

    def end(self, process: ProcessId) -> None:
        """Stop an lxcfs: SIGTERM (it unmounts itself), SIGKILL if it lingers."""
        kill(process, signal.SIGTERM)
        if not wait_exit(process, STOP_TIMEOUT):
            kill(process, signal.SIGKILL)
            wait_exit(process, STOP_TIMEOUT)

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
    cgroups: list[dict[str, object]]


def users(run_dir: Path) -> list[User]:
    """CTs that use the daemon: their state file holds the plugin's record and their init
    runs, or a start that recorded it is still going on (its vzctl runs)."""
    found: list[User] = []
    try:
        names = sorted(os.listdir(run_dir))
    except FileNotFoundError:
        return found
    for name in names:
        stem, dot, ext = name.partition(".")
        if ext != "json" or not dot or not stem.isdigit():
            continue
        try:
            data = json.loads((run_dir / name).read_text())
        except (OSError, ValueError):
            continue
        entry = (data.get("plugins") or {}).get(PLUGIN)
        if not isinstance(entry, dict):
            continue
        record = entry.get("record", entry)
        init = data.get("init")
        process = ProcessId(init["pid"], init["start_time"]) if init else None
        if process is not None:
            if not process.is_alive():
                continue
        else:
            vzctl = data.get("vzctl_pid")
            if not isinstance(vzctl, int) or ProcessId.of(vzctl) is None:
                continue
        found.append(User(int(stem), process, tuple(record.get("files") or ()),
                          list(data.get("cgroups") or [])))
    return found


def stop_unless_used(where: Place, run_dir: Path, leaving: int) -> bool:
    """Stop the daemon when no CT but ``leaving`` uses it; True when it was stopped."""
    with locked(where):
        if any(user.ctid != leaving for user in users(run_dir)):
            return False
        clear(where)
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
