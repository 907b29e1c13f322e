"""Host daemons that vzctl starts once and later finds again: launch, record, connect, stop.

vzcore needs no daemon to run CTs, but a few services are shared by every running CT of an
installation and outlive the ``vzctl`` that started them: lxcfs, the beancounters view
daemon, the console daemon.  Each follows one pattern, which :class:`Daemon` implements:

- its files live in one directory of the installation's run directory: a *record* (the
  daemon's PID **and** start time, never a bare PID, so a reused PID is never taken for
  it), a lock every vzctl holds while it looks at or changes the daemon, a log, and
  optionally the daemon's Unix socket;
- :meth:`Daemon.spawn` starts it in a session of its own (no terminal's hang-up reaches it)
  and, given :attr:`Daemon.cgroups`, inside a group of its own before it runs a single
  instruction of its program, so it leaves the calling vzctl's login-session cgroup (a
  logout, ``KillUserProcesses`` or ``systemctl stop session-N.scope`` would kill it there);
- :meth:`Daemon.running` finds it again; :meth:`Daemon.connect` talks to it;
  :meth:`Daemon.stop` ends it (through a pidfd) and :meth:`Daemon.remove_cgroups` removes
  its then empty group.

Example (a daemon serving requests on ``DIR/echo.sock``)::

    daemon = Daemon.named(run_dir / "echo", "echo", cgroups=groups)
    with daemon.locked():
        process = daemon.running()
        if process is None:
            process = daemon.spawn([sys.executable, "-m", "echo_daemon", str(daemon.directory)])
        with daemon.connect(process) as sock:
            sock.sendall(b"hello")

The caller chooses the group (policy: :func:`vzcore.ctgroups.daemon_groups` puts it below
``CGROUP_PARENT``); this module only plans nothing and moves the process.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from vzcore.errors import VzError
from vzcore.linux.cgroups import CgroupSet
from vzcore.linux.procfs import ProcessId, kill, wait_exit

READY_TIMEOUT = 10.0
"""Seconds :meth:`Daemon.connect` waits for a fresh daemon to listen."""
STOP_TIMEOUT = 5.0
"""Seconds :meth:`Daemon.stop` waits after SIGTERM (and again after SIGKILL)."""
DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
"""A daemon's environment: nothing of the admin's shell leaks into a long-lived process."""


@attrs.frozen
class Daemon:
    """One shared daemon: its directory, the names of its files, its cgroups.

    :ivar directory: the daemon's directory (made with mode 0700 when needed).
    :ivar record_name: the file holding ``PID START_TIME`` of the running daemon.
    :ivar lock_name: the lock file (:meth:`locked`).
    :ivar log_name: where the daemon's stderr goes.
    :ivar socket_name: the daemon's listening socket, if it has one (:meth:`connect`).
    :ivar cgroups: the group(s) :meth:`spawn` moves the daemon into; ``None`` leaves it in
        the caller's groups.
    """

    directory: Path
    record_name: str
    lock_name: str
    log_name: str
    socket_name: str | None = None
    cgroups: CgroupSet | None = None

    @classmethod
    def named(cls, directory: Path, name: str, *, cgroups: CgroupSet | None = None) -> Daemon:
        """The conventional file names: ``NAME.pid``, ``NAME.lock``, ``NAME.log``,
        ``NAME.sock``."""
        return cls(directory, f"{name}.pid", f"{name}.lock", f"{name}.log", f"{name}.sock",
                   cgroups)

    @property
    def record_file(self) -> Path:
        return self.directory / self.record_name

    @property
    def lockfile(self) -> Path:
        return self.directory / self.lock_name

    @property
    def log(self) -> Path:
        return self.directory / self.log_name

    @property
    def socket_path(self) -> Path:
        if self.socket_name is None:
            raise VzError(f"the daemon of {self.directory} has no socket")
        return self.directory / self.socket_name

    # -- the lock -----------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the daemon's lock: every start, check, hand-over and stop takes it (and a
        daemon that exits on its own takes it too before it removes its socket).

        A stop that removes the whole directory may unlink the lock file while another
        vzctl waits on it; that one then locks the new file instead of holding a lock
        nobody else sees.
        """
        while True:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue  # the directory went with a stop meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.stat(self.lockfile).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield
                    return
            finally:
                os.close(fd)

    # -- the record ---------------------------------------------------------------------

    def recorded(self) -> ProcessId | None:
        """The process the record names, alive or not (``None``: no readable record)."""
        try:
            pid, start_time = (int(w) for w in self.record_file.read_text().split())
        except (OSError, ValueError):
            return None
        return ProcessId(pid, start_time)

    def running(self) -> ProcessId | None:
        """The recorded daemon while that very process runs (not a zombie, not a reused
        PID); ``None`` otherwise."""
        process = self.recorded()
        return process if process is not None and process.is_alive() else None

    def record(self, process: ProcessId) -> None:
        """Record ``process`` as the daemon (written whole: a reader never sees half)."""
        temporary = self.record_file.with_name(self.record_file.name + ".new")
        temporary.write_text(f"{process.pid} {process.start_time}\n")
        temporary.rename(self.record_file)

    def forget(self) -> None:
        """Remove the record (the daemon is gone or being stopped)."""
        self.record_file.unlink(missing_ok=True)

    # -- launching ----------------------------------------------------------------------

    def spawn(self, argv: Sequence[str], *, pass_fds: Sequence[int] = (),
              stdout_to_log: bool = False,
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], ProcessId]:
        """Start the daemon and record it; the caller holds :meth:`locked`.

        The daemon gets a session of its own, ``/`` as working directory, no descriptors
        but stdio and ``pass_fds``, stdin from ``/dev/null``, stderr (and with
        ``stdout_to_log`` stdout) appended to the log, and :data:`DAEMON_ENV` unless
        ``env`` is given.  With :attr:`cgroups` it is moved into them before it execs
        (:meth:`prepare_cgroups`), so neither it nor any process it forks is ever in the
        caller's groups.

        Returns the ``Popen`` (for ``poll``/``wait`` while it is the caller's child) and
        the recorded identity.  Raises :class:`VzError` when it dies at once.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        procs = self.prepare_cgroups()
        try:
            with open(self.log, "ab") as log:
                try:
                    child = subprocess.Popen(
                        list(argv), stdin=subprocess.DEVNULL,
                        stdout=log if stdout_to_log else subprocess.DEVNULL, stderr=log,
                        cwd="/", start_new_session=True, close_fds=True,
                        pass_fds=tuple(pass_fds), env=DAEMON_ENV if env is None else env,
                        preexec_fn=(lambda: _join(procs)) if procs else None)
                except subprocess.SubprocessError as exc:
                    groups = ", ".join(str(d.directory) for d in self.cgroups.dirs) \
                        if self.cgroups else "?"
                    raise VzError(f"cannot start {argv[0]}: moving it into its cgroups "
                                  f"({groups}) failed ({exc})") from None
        finally:
            for fd in procs:
                os.close(fd)
        process = ProcessId.of(child.pid)
        if process is None:
            child.wait()
            raise VzError(f"{argv[0]} exited at once (status {child.returncode}); see {self.log}")
        self.record(process)
        return child, process

    def prepare_cgroups(self) -> list[int]:
        """Make the daemon's groups and open their ``cgroup.procs`` for writing; the
        descriptors are the caller's to close (empty without :attr:`cgroups`).

        Opened before the fork, so the child only writes ``0`` ("myself") to each: no
        path lookup and no allocation between fork and exec.
        """
        if self.cgroups is None:
            return []
        self.cgroups.create()
        fds: list[int] = []
        try:
            for d in self.cgroups.dirs:
                fds.append(os.open(d.file("cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise VzError(f"cannot open {exc.filename} to move a daemon there: "
                          f"{exc.strerror}") from None
        return fds

    # -- talking to it ------------------------------------------------------------------

    def connect(self, process: ProcessId | None, *, kind: int = socket.SOCK_STREAM,
                timeout: float = READY_TIMEOUT) -> socket.socket:
        """Connect to the daemon's socket, waiting up to ``timeout`` seconds for a fresh
        ``process`` to listen.  Raises ``OSError`` (``ENOENT``/``ECONNREFUSED``) when
        nothing listens and ``process`` is ``None``, dead, or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
            try:
                sock.connect(str(self.socket_path))
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if process is None or not process.is_alive() or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    # -- ending it ----------------------------------------------------------------------

    def stop(self, process: ProcessId, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM ``process`` (through a pidfd: a reused PID is never hit), SIGKILL if it
        lingers past ``timeout``; returns once it is gone."""
        stop(process, timeout)

    def remove_cgroups(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Remove the daemon's groups once they are empty; False when a process is still
        in one after ``timeout`` seconds (a daemon that runs), left for the next stop.

        Call it when the daemon is stopped or leaving: one that exits on its own removes
        its record and releases its lock a moment before the kernel takes it out of its
        groups, so a busy group is tried again meanwhile.
        """
        if self.cgroups is None:
            return True
        emptied = True
        deadline = time.monotonic() + timeout
        for d in self.cgroups.dirs:
            while True:
                try:
                    d.directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                        raise VzError(f"cannot remove the daemon cgroup {d.directory}: "
                                      f"{exc.strerror}") from None
                    if time.monotonic() > deadline:
                        emptied = False
                        break
                    time.sleep(0.01)
        return emptied

def _join(procs: Sequence[int]) -> None:
    """In the forked child: move this process into each group (``0`` means the writer)."""
    for fd in procs:
        os.write(fd, b"0")


def stop(process: ProcessId, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``process`` through a pidfd, SIGKILL if it lingers past ``timeout``; returns
    once it is gone (at most twice ``timeout`` later)."""
    kill(process, signal.SIGTERM)
    if not wait_exit(process, timeout):
        kill(process, signal.SIGKILL)
        wait_exit(process, timeout)


def pidfd(process: ProcessId) -> int:
    """A pidfd of ``process``, checked to be that very process: opened first, then its
    start time compared, so the descriptor cannot belong to a process that reused the
    PID.  Raises :class:`ProcessLookupError` when it is gone.

    A pidfd names one process for as long as it is open, in any namespace: pass it to
    ``setns`` (kernel 5.8+) or ``pidfd_send_signal`` where a PID read earlier could by
    then name another process (a CT's time namespace even shows other start times).
    """
    fd = os.pidfd_open(process.pid)
    if not process.is_alive():
        os.close(fd)
        raise ProcessLookupError(errno.ESRCH, f"process {process.pid} is gone")
    return fd
