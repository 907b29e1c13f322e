"""The init-kind layer: which init a CT boots, and how to talk to it.

A CT's init kind is detected at every start from its own file system (where ``/sbin/init``
resolves inside the CT root, read with :mod:`vzcore.linux.safefs`), never stored in its
config, and recorded in the state file for the run so that ``vzctl stop`` and the event
watcher talk to the init that was booted, not to whatever the tree holds now.

============  =======================  =============================  =========================
kind          boots a distribution     stop (``vzctl stop``)           up (``vzctl start --wait``)
============  =======================  =============================  =========================
``systemd``   yes: /run, cgroups,      ``SIGRTMIN+3`` to PID 1         ``READY=1`` on
              ``NOTIFY_SOCKET``        (systemd's "halt")              ``NOTIFY_SOCKET``
``sysvinit``  yes: /run, cgroups       ``telinit 0`` inside            utmp's runlevel record
                                       (``/run/initctl``)              says the default
                                                                       runlevel and ``rc`` ended
``busybox``   no                       ``halt`` inside (as vzctl)      at once
============  =======================  =============================  =========================

Any other init (runit, OpenRC's, a shell script) is handled as ``busybox`` is: ``halt``
inside, then ``SIGPWR``.
"""

from __future__ import annotations

import os
import signal

import attrs

from vzcore.errors import KernelError
from vzcore.linux import safefs

SYSTEMD = "systemd"
SYSVINIT = "sysvinit"
BUSYBOX = "busybox"
INIT = "sbin/init"
NOTIFY_DIR = "run/host"
"""Where the CT sees the directory of its notify socket (systemd-nspawn's place)."""
NOTIFY_SOCKET = "/run/host/notify"
SYSVINIT_MARKS = (b"/run/initctl", b"/dev/initctl")
"""Strings only sysvinit's init binary holds (its control FIFO)."""


@attrs.frozen
class InitKind:
    """How vzcore treats one kind of init.

    :ivar name: ``systemd``, ``sysvinit`` or ``busybox``.
    :ivar system: boots a whole distribution: gets a /run and /run/lock tmpfs, its cgroup
        hierarchies at /sys/fs/cgroup and (systemd) a notify socket.
    :ivar stop_signal: the signal that makes init shut down cleanly, or ``None`` when a
        command inside does (:attr:`stop_command`).
    :ivar stop_command: what ``vzctl stop`` runs inside (first found wins).
    """

    name: str
    system: bool
    stop_signal: int | None
    stop_command: tuple[tuple[str, ...], ...]

    def environment(self, uuid: str, notify: bool = False) -> dict[str, str]:
        """The variables systemd's container interface gives PID 1 beyond ``container``
        (``notify``: the start made a notify socket, ``--wait``)."""
        env = {"container_uuid": uuid}
        if self.name == SYSTEMD and notify:
            env["NOTIFY_SOCKET"] = NOTIFY_SOCKET
        return env


KINDS = {
    SYSTEMD: InitKind(SYSTEMD, True, signal.SIGRTMIN + 3, ()),
    SYSVINIT: InitKind(SYSVINIT, True, None, (("/sbin/telinit", "0"), ("/sbin/halt",))),
    BUSYBOX: InitKind(BUSYBOX, False, None, (("halt",),)),
}


def detect(root: str) -> InitKind:
    """The init kind of the CT tree at ``root`` (host path): what ``/sbin/init`` resolves
    to inside it.  A missing init is left to the start's exec to report."""
    root_fd = safefs.open_root(root)
    try:
        try:
            fd = safefs.open_in(root_fd, INIT, os.O_RDONLY)
        except KernelError:
            return KINDS[BUSYBOX]
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            name = os.path.basename(target)
            if name == "systemd":
                return KINDS[SYSTEMD]
            if name == "busybox":
                return KINDS[BUSYBOX]
            if _is_sysvinit(fd):
                return KINDS[SYSVINIT]
            return KINDS[BUSYBOX]
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)


def _is_sysvinit(fd: int, limit: int = 4 << 20) -> bool:
    """Whether the open file is sysvinit's init (it names its control FIFO)."""
    data = os.pread(fd, limit, 0)
    return any(mark in data for mark in SYSVINIT_MARKS)
