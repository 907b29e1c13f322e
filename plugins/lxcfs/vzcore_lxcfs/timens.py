"""The CT's own boot time: a time namespace whose ``CLOCK_BOOTTIME`` starts at the CT's start.

lxcfs answers ``/proc/uptime`` reads, but programs that ask the kernel (``sysinfo(2)``,
as busybox's ``uptime`` does, or ``clock_gettime(CLOCK_BOOTTIME)``) would still get the
host's boot time.  A time namespace (Linux 5.6) shifts both for every
process in it, including those ``vzctl exec`` joins.  Its offset can be set only between
the ``unshare`` (by the start's "parent" process) and the first process created in it
(the CT's init), which is when ``vz_setup_host`` runs.
"""

from __future__ import annotations

import os
import time


def available() -> bool:
    """Whether the kernel has time namespaces."""
    return os.path.exists("/proc/self/ns/time")


def _ppid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2:].split()[1])


def unshared_child(known: int | None = None) -> int | None:
    """The child of this process that unshared a time namespace and has not yet put a
    process in it (the start's parent, forked by vzctl before ``vz_pre_start``); ``None``
    when no time namespace was asked for.  ``known`` is that child's PID when the engine
    names it: without it every process on the host is looked at (thousands with as many
    CTs running: the largest per-start cost that grew with their number)."""
    me = os.getpid()
    candidates = [str(known)] if known else os.listdir("/proc")
    for pid in candidates:
        if not pid.isdigit() or _ppid(pid) != me:
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/time") != os.readlink(f"/proc/{pid}/ns/time_for_children"):
                return int(pid)
        except OSError:
            continue
    return None


def start_clock_at_zero(pid: int) -> None:
    """Shift the boot-time clock of ``pid``'s namespace for children so it reads (almost)
    zero now: the CT's uptime counts from its start."""
    offset = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    with open(f"/proc/{pid}/timens_offsets", "w") as f:
        f.write(f"boottime {-offset} 0\n")
