"""``vzctl start --wait``: has the CT's init finished booting?

systemd
    says so itself: PID 1 sends ``READY=1`` to ``$NOTIFY_SOCKET`` once its default target
    is reached (systemd's container interface; systemd-nspawn's ``--notify-ready``).  The
    start binds a datagram socket in a host directory (:func:`listen`) that the CT sees
    at /run/host; only a message whose kernel-checked sender (``SCM_CREDENTIALS``) is the
    CT's init counts.
sysvinit
    has no such message: the CT is up when init's runlevel record in the CT's utmp is the
    default runlevel (inittab's ``initdefault``) and the ``rc`` script of that runlevel,
    which init runs as a ``wait`` entry, has ended (so the runlevel's services started).
    Both are read from the host through ``/proc/INIT/root``, inside the CT's root.
busybox (and others)
    are up once init runs.

On timeout the error names what init reported: systemd's failed units
(``systemctl --failed`` inside) and state, or sysvinit's runlevel and running rc script.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from pathlib import Path

from vzcore.errors import KernelError, WaitFailed
from vzcore.linux import safefs
from vzcore.linux.procfs import ProcessId
from vzcore.runtime import Run
from vzcore_isolation.initkind import SYSTEMD, SYSVINIT

SOCKET_NAME = "notify"
POLL = 0.2
"""Seconds between two looks at a sysvinit CT's utmp (and at a systemd CT's init)."""
UTMP_RECORD = struct.Struct("=hxxi32s4s32s256s")
UTMP_SIZE = 384
RUN_LVL = 1
DEFAULT_RUNLEVEL = "2"
HALT_RUNLEVEL = "0"

_listeners: dict[int, socket.socket] = {}
"""The notify socket of each CT this vzctl started, by CTID (held until it exits)."""


def listen(ctid: int, host_dir: Path, owner: tuple[int, int]) -> None:
    """Make ``host_dir`` (for the CT's /run/host) with the CT's notify socket in it,
    writable by the CT's root only; keep it listening for :func:`wait`."""
    host_dir.mkdir(mode=0o755, exist_ok=True)
    path = host_dir / SOCKET_NAME
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(str(path))
    os.chown(path, *owner)
    os.chmod(path, 0o600)
    _listeners[ctid] = sock


def wait(run: Run, kind: str, timeout: float) -> None:
    """Return once the CT's init says it is up; raise :class:`WaitFailed` naming what it
    reported after ``timeout`` seconds, or at once when init exits."""
    init = run.state.init
    assert init is not None
    deadline = time.monotonic() + timeout
    if kind == SYSTEMD:
        sock = _listeners.get(run.ct.ctid)
        if sock is None:
            raise WaitFailed(f"CT {run.ct.ctid}: no notify socket to wait on")
        ready = _wait_systemd(sock, init, deadline)
    elif kind == SYSVINIT:
        ready = _wait_sysvinit(init, deadline)
    else:
        return
    if ready:
        return
    if not init.is_alive():
        raise WaitFailed(f"CT {run.ct.ctid}: its init ({kind}) exited while it was booting; "
                         f"see the CT's logs, then 'vzctl start {run.ct.ctid}' again")
    raise WaitFailed(f"CT {run.ct.ctid} did not finish booting within {timeout:g} s "
                     f"(--wait-timeout): {_diagnose(run, kind)}; the CT keeps running")


def _wait_systemd(sock: socket.socket, init: ProcessId, deadline: float) -> bool:
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], min(left, 1.0))
        if not readable:
            if not init.is_alive():
                return False
            continue
        data, ancillary, _flags, _address = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        if _sender(ancillary) != init.pid:
            continue  # only PID 1 of the CT speaks for the boot
        if b"READY=1" in data.split(b"\n"):
            return True
    return False


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            pid, _uid, _gid = struct.unpack("=iII", data[:12])
            return pid
    return None


def _wait_sysvinit(init: ProcessId, deadline: float, level: str | None = None) -> bool:
    """Whether sysvinit reached runlevel ``level`` (default: inittab's) and its ``rc``
    script ended, before ``deadline``."""
    default = level
    while time.monotonic() < deadline:
        if not init.is_alive():
            return False
        try:
            root_fd = safefs.open_root(f"/proc/{init.pid}/root")
        except OSError:
            return False
        try:
            if default is None:
                default = _default_runlevel(root_fd)
            # At runlevel 0 the rc script ends every process before its last step, so
            # "no child left" also proves the daemons are gone.
            if (runlevel(root_fd) == default and not _rc_running(init.pid)
                    and (level != HALT_RUNLEVEL or not _children(init.pid))):
                return True
        finally:
            os.close(root_fd)
        time.sleep(POLL)
    return False


def halted(init: ProcessId, timeout: float) -> bool:
    """Whether sysvinit reached runlevel 0 and its ``rc 0`` ended within ``timeout``: the
    runlevel record says 0 and init has no child left (``rc 0`` ends every process,
    daemons reparented to init included, before its last step)."""
    return _wait_sysvinit(init, time.monotonic() + timeout, HALT_RUNLEVEL)


def _default_runlevel(root_fd: int) -> str:
    """inittab's ``id:N:initdefault:``, else Debian's 2."""
    try:
        text = safefs.read_file(root_fd, "etc/inittab", limit=1 << 20).decode(errors="replace")
    except KernelError:
        return DEFAULT_RUNLEVEL
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) >= 3 and fields[2] == "initdefault" and fields[1][:1].isdigit():
            return fields[1][:1]
    return DEFAULT_RUNLEVEL


def runlevel(root_fd: int) -> str | None:
    """The current runlevel in the CT's /run/utmp (``"2"``), or ``None`` before init
    wrote one."""
    try:
        data = safefs.read_file(root_fd, "run/utmp", limit=1 << 20)
    except KernelError:
        return None
    found = None
    for offset in range(0, len(data) - UTMP_SIZE + 1, UTMP_SIZE):
        kind, pid, *_rest = UTMP_RECORD.unpack_from(data, offset)
        if kind == RUN_LVL:
            found = chr(pid & 0xFF)
    return found


def _children(init_pid: int) -> list[str]:
    try:
        return Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    except OSError:
        return []


def _rc_running(init_pid: int) -> str | None:
    """The command line of init's child running a runlevel's ``rc`` script, if any."""
    for child in _children(init_pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"/init.d/rc") for arg in argv):
            return " ".join(a.decode(errors="replace") for a in argv if a)
    return None


def _diagnose(run: Run, kind: str) -> str:
    from vzcore.lifecycle.enter import output_in_ct

    if kind == SYSTEMD:
        _code, state = output_in_ct(run, ("systemctl", "is-system-running"))
        _code, listing = output_in_ct(run, ("systemctl", "--failed", "--plain", "--no-legend",
                                            "--no-pager"))
        failed = [line.split()[0] for line in listing.splitlines() if line.split()]
        units = ", ".join(failed) if failed else "none"
        return (f"systemd is {state.strip() or 'unknown'}, failed units: {units} "
                f"(see 'vzctl exec {run.ct.ctid} systemctl list-jobs' and 'journalctl -b')")
    assert run.state.init is not None
    init = run.state.init.pid
    level = None
    try:
        root_fd = safefs.open_root(f"/proc/{init}/root")
        try:
            level = runlevel(root_fd)
        finally:
            os.close(root_fd)
    except OSError:
        pass
    rc = _rc_running(init)
    return f"sysvinit is in runlevel {level or 'unknown'}" + (f", still running '{rc}'" if rc else "")


def close(ctid: int) -> None:
    """Stop listening for CT ``ctid`` (the socket file goes with its directory)."""
    sock = _listeners.pop(ctid, None)
    if sock is not None:
        sock.close()
