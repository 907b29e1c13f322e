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
closes the connection; the daemon exits with the last one.  The daemon is one of vzctl's
shared daemons (:mod:`vzcore.linux.daemon`): recorded by PID and start time, and run in a
cgroup of its own (``CGROUP_PARENT/daemon-view``), out of the calling vzctl's session,
which the last CT's stop removes (:func:`release`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.errors import VzError
from vzcore.linux import mounts, namespaces
from vzcore.linux.daemon import Daemon
from vzcore_beancounters.fuse import MOUNT_OPTIONS

if TYPE_CHECKING:
    from vzcore.container import Container
    from vzcore.linux.procfs import ProcessId
    from vzcore.runtime import Run

NAME = "view"
SOCKET = f"{NAME}.sock"
PIDFILE = f"{NAME}.pid"
LOCKFILE = f"{NAME}.lock"
"""The daemon's files in :func:`directory` (:meth:`Daemon.named`); both sides take the
lock (see :mod:`.viewd`)."""

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


def daemon(ct: Container) -> Daemon:
    """The installation's view daemon: its files and its cgroups."""
    from vzcore.ctgroups import daemon_groups

    return Daemon.named(directory(ct), NAME, cgroups=daemon_groups(ct, NAME))


def _spawn(helper: Daemon, fd: int, ctid: int, record: str, owner: tuple[int, int]) -> ProcessId:
    """Start the daemon with its first CT's connection (no waiting for it to listen: the
    kernel queues the CT's requests until the daemon reads them)."""
    import sys

    _child, process = helper.spawn(
        [sys.executable, "-m", "vzcore_beancounters.viewd", str(helper.directory),
         f"{ctid}:{record}:{fd}:{owner[0]}:{owner[1]}"], pass_fds=(fd,))
    return process


def _hand_over(helper: Daemon, process: ProcessId, fd: int, ctid: int, record: str,
               owner: tuple[int, int]) -> None:
    import json
    import socket

    try:
        sock = helper.connect(process, timeout=READY_TIMEOUT)
    except OSError:
        raise VzError(f"the beancounters view daemon does not answer; see {helper.log}") \
            from None
    with sock:
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
        helper = daemon(ct)
        with helper.locked():
            process = helper.running()
            if process is None:
                _spawn(helper, fd, ct.ctid, run.plugin, ct.root_owner)
            else:
                _hand_over(helper, process, fd, ct.ctid, run.plugin, ct.root_owner)
    finally:
        os.close(fd)  # the daemon holds the connection now; if it does not, reads fail


def release(ct: Container, plugin: str) -> None:
    """``vz_post_stop``: once no CT of the installation has a view any more, wait for the
    daemon to leave (its last connection closed with the stopped CT's mount namespace;
    a daemon that lingers is stopped) and remove its cgroup.  Idempotent."""
    from vzcore.linux.daemon import stop
    from vzcore.linux.procfs import wait_exit
    from vzcore.records import RecordError
    from vzcore.runtime import states
    from vzcore_beancounters.record import BeancountersRecord

    for state in states(ct.paths.run_dir):
        if state.ctid == ct.ctid or not (state.is_running or state.starting):
            continue
        try:
            record = state.record(plugin, BeancountersRecord)
        except RecordError:
            continue
        if record is not None and record.view:
            return  # another CT is served (or about to be): the daemon stays
    helper = daemon(ct)
    process = helper.running()
    if process is not None and not wait_exit(process, READY_TIMEOUT):
        stop(process)  # not under the lock: the daemon takes it on its way out
    helper.remove_cgroups()  # the exiting daemon may need a moment to leave it
