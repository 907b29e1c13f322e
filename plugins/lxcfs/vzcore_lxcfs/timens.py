"""The CT's own boot time: a time namespace whose ``CLOCK_BOOTTIME`` starts at the CT's start.

lxcfs answers ``/proc/uptime`` reads, but programs that ask the kernel (``sysinfo(2)``,
as busybox's ``uptime`` does, or ``clock_gettime(CLOCK_BOOTTIME)``) would still get the
host's boot time.  A time namespace (Linux 5.6) shifts both for every
process in it, including those ``vzctl exec`` joins.  Its offset can be set only between
the ``unshare`` (by the start's "holder" process) and the first process created in it
(the CT's init), which is when ``vz_setup_host`` runs.
"""

from __future__ import annotations

import os
import time


def available() -> bool:
    """Whether the kernel has time namespaces."""
    return os.path.exists("/proc/self/ns/time")


def unshared(pid: int) -> bool:
    """Whether ``pid`` (the start's holder) unshared a time namespace for its children."""
    try:
        return os.readlink(f"/proc/{pid}/ns/time") != os.readlink(f"/proc/{pid}/ns/time_for_children")
    except OSError:
        return False


def start_clock_at_zero(pid: int) -> None:
    """Shift the boot-time clock of ``pid``'s namespace for children so it reads (almost)
    zero now: the CT's uptime counts from its start."""
    offset = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    with open(f"/proc/{pid}/timens_offsets", "w") as f:
        f.write(f"boottime {-offset} 0\n")
