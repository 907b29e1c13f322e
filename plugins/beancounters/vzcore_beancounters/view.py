"""The CT's own view of its beancounters: ``/dev/user_beancounters`` inside the CT.

OpenVZ's kernel had ``/proc/user_beancounters``.  procfs on an upstream kernel has no way
to add a name (its root lists only what the kernel registered, and nothing can be
mounted on a name that does not exist), so the view lives beside the CT's other device
files, in the /dev tmpfs vzcore builds for each start: a read-only FUSE file whose
content is rendered on every open, exactly in /proc/user_beancounters' format.

Start: ``vz_setup_child`` leaves an empty placeholder there; ``vz_post_start`` opens
``/dev/fuse``, mounts that connection on the placeholder inside the CT's mount namespace,
and hands the descriptor to the view daemon (:mod:`.viewd`) over its socket, or starts
the daemon with it when none runs.  The mount dies with the CT's mount namespace, which
closes the connection; the daemon exits with the last one.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.errors import VzError
from vzcore.linux import mounts, namespaces
from vzcore.linux.procfs import ProcessId
from vzcore_beancounters.fuse import MOUNT_OPTIONS

if TYPE_CHECKING:
    import socket

    from vzcore.container import Container
    from vzcore.runtime import Run

SOCKET = "view.sock"
PIDFILE = "view.pid"
LOCKFILE = "view.lock"
"""The daemon's files in :func:`directory`; both sides take the lock (see :mod:`.viewd`)."""

VIEW_PATH = "/dev/user_beancounters"
FUSE_DEVICE = "/dev/fuse"
FSTYPE = "fuse.vzubc"
READY_TIMEOUT = 10.0


def available() -> bool:
    """Whether the host can serve views (the fuse module is loaded)."""
    return os.path.exists(FUSE_DEVICE)


def directory(ct: Container) -> Path:
    """The daemon's directory: socket, pid file, lock, log (and the peaks files)."""
    return ct.paths.run_dir / "beancounters"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _daemon(path: Path) -> ProcessId | None:
    try:
        pid, start_time = (int(w) for w in (path / PIDFILE).read_text().split())
    except (OSError, ValueError):
        return None
    process = ProcessId(pid, start_time)
    return process if process.is_alive() else None


def _spawn(path: Path, fd: int, ctid: int, record: str, owner: tuple[int, int]) -> ProcessId:
    """Start the daemon with its first CT's connection (no waiting for it to listen: the
    kernel queues the CT's requests until the daemon reads them)."""
    import subprocess
    import sys

    with open(path / "view.log", "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "vzcore_beancounters.viewd", str(path),
             f"{ctid}:{record}:{fd}:{owner[0]}:{owner[1]}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd="/",
            start_new_session=True, close_fds=True, pass_fds=(fd,),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"})
    process = ProcessId.of(child.pid)
    if process is None:
        raise VzError(f"the beancounters view daemon died at once; see {path}/view.log")
    (path / PIDFILE).write_text(f"{process.pid} {process.start_time}\n")
    return process


def _connect(path: Path, daemon: ProcessId) -> socket.socket:
    """Connect to the daemon, waiting for a fresh one to listen."""
    import socket

    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(path / SOCKET))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if not daemon.is_alive() or time.monotonic() > deadline:
                raise VzError(f"the beancounters view daemon does not answer; see {path}/view.log") \
                    from None
            time.sleep(0.005)


def _hand_over(path: Path, daemon: ProcessId, fd: int, ctid: int, record: str,
               owner: tuple[int, int]) -> None:
    import json
    import socket

    with _connect(path, daemon) as sock:
        request = json.dumps({"ctid": ctid, "record": record, "owner": owner}).encode()
        socket.send_fds(sock, [request], [fd])
        sock.settimeout(READY_TIMEOUT)
        answer = sock.recv(4096).decode(errors="replace").strip()
    if answer != "ok":
        raise VzError(f"CT {ctid}: the beancounters view daemon refused the CT: {answer}")


def prepare() -> str | None:
    """``vz_pre_start``: where the CT's view will be, to record (none when the host lacks
    FUSE)."""
    return VIEW_PATH if available() else None


def attach(ct: Container, run: Run) -> None:
    """``vz_post_start``: mount a new FUSE connection on the CT's placeholder and give it
    to the daemon."""
    if run.record is None or not run.record.view:
        return
    fd = os.open(FUSE_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    try:
        data = f"fd={fd},{MOUNT_OPTIONS}"
        flags = mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC | mounts.MS_RDONLY
        namespaces.call_in(run.init_pid, ["mnt"],
                           lambda: mounts.mount("vzubc", VIEW_PATH, FSTYPE, flags, data))
        path = directory(ct)
        with _locked(path):
            daemon = _daemon(path)
            if daemon is None:
                _spawn(path, fd, ct.ctid, run.plugin, ct.root_owner)
            else:
                _hand_over(path, daemon, fd, ct.ctid, run.plugin, ct.root_owner)
    finally:
        os.close(fd)  # the daemon holds the connection now; if it does not, reads fail
