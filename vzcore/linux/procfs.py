"""Processes through /proc and pidfds: identity that survives PID reuse, waiting, signals."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import time

import attrs


@attrs.frozen
class ProcessId:
    """A process as the kernel knows it: PID plus start time (clock ticks after boot).

    A PID can be reused after its process died; the pair (pid, start_time) cannot.
    """

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        """The identity of the live process ``pid``, or ``None`` if it is gone or a zombie."""
        stat = _stat_fields(pid)
        if stat is None or stat[0] in ("Z", "X", "x"):
            return None
        return cls(pid, int(stat[19]))

    def is_alive(self) -> bool:
        """True while this very process runs (not a zombie, not a reused PID)."""
        return ProcessId.of(self.pid) == self


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def wait_exit(process: ProcessId, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``process`` to exit; True once it has.

    Works for processes that are not our children (a CT's init is reparented when vzctl
    exits): a pidfd becomes readable when the process exits.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return True
    try:
        if not process.is_alive():  # the PID may have been reused before we opened it
            return True
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return not process.is_alive()
            if poller.poll(remaining * 1000):
                return True
    finally:
        os.close(pidfd)


def kill(process: ProcessId, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to ``process`` through a pidfd, so a reused PID is never hit.

    Returns False when the process is already gone.
    """
    from vzcore.errors import KernelError
    from vzcore.linux import libc

    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return False
    try:
        if not process.is_alive():
            return False
        libc.pidfd_send_signal(pidfd, sig)
        return True
    except KernelError as exc:
        if exc.errno == 3:  # ESRCH
            return False
        raise
    finally:
        os.close(pidfd)


def seconds_since_boot() -> float:
    """Seconds since boot, from /proc/uptime."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def uptime_of(process: ProcessId) -> float:
    """Seconds ``process`` has been running."""
    ticks = os.sysconf("SC_CLK_TCK")
    return max(0.0, seconds_since_boot() - process.start_time / ticks)


def namespace(pid: int, name: str) -> str | None:
    """The namespace ``name`` (``pid``, ``pid_for_children``, ``mnt`` ...) of process
    ``pid`` as the kernel names it (``pid:[4026532311]``), or ``None`` when the process
    is gone or the link is not readable (``pid_for_children`` before the first child)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/{name}")
    except OSError:
        return None


NS_GET_PARENT = 0xB702
"""ioctl on a PID namespace's file: a descriptor of its parent (``_IO(0xb7, 0x2)``)."""
MAX_PID_NESTING = 32
"""The kernel's limit on nested PID namespaces."""


def pid_namespaces(pid: int, name: str = "pid") -> list[str]:
    """Process ``pid``'s PID namespace (``name``: ``pid`` or ``pid_for_children``) and
    every ancestor the caller can see, innermost first, named as :func:`namespace` names
    them; empty when the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    chain = []
    try:
        for _level in range(MAX_PID_NESTING + 1):
            chain.append(f"pid:[{os.fstat(fd).st_ino}]")
            try:
                parent = fcntl.ioctl(fd, NS_GET_PARENT)
            except OSError:  # EPERM: the caller's own namespace (or above it) is reached
                break
            os.close(fd)
            fd = parent
    finally:
        os.close(fd)
    return chain


def namespace_pids(pid: int) -> list[int]:
    """The PIDs of ``pid`` in its PID namespace and every ancestor one, outermost first
    (the ``NSpid`` line): ``[13460, 1]`` is the init of a child PID namespace."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(n) for n in line.split()[1:]]
    except OSError:
        pass
    return []


def command_name(pid: int) -> str:
    """The short command name of ``pid`` (``comm``), ``?`` when it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"
