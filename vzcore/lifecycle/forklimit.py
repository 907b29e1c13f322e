"""Telling the user why the kernel refused a fork in a CT (``EAGAIN``, not ``[Errno 11]``).

A fork fails with EAGAIN when the CT's pids cgroup is at ``pids.max`` (its ``numproc``
limit), or when the host runs out of PIDs or threads.  A joining process reads the CT's
pids counters before it enters the CT's mount namespace (the host's cgroupfs is not
mounted there, and holding a descriptor of it inside the CT is what CVE-2024-21626
exploited); :meth:`ForkLimit.error` explains a refused fork from those numbers.
"""

from __future__ import annotations

import attrs

from vzcore.errors import VzError
from vzcore.linux.cgroups import CgroupSet

EXIT_RESOURCE = 3  # VZ_SYSTEM_ERROR: the closest of vzctl's codes


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


@attrs.frozen
class ForkLimit:
    """The CT's task count and process limit as read just before a fork.

    :ivar current: tasks in the CT's pids group (``None``: unknown).
    :ivar maximum: its ``pids.max`` (``None``: no limit, or unknown).
    """

    ctid: int
    current: int | None
    maximum: int | None

    @classmethod
    def read(cls, ctid: int, cgroups: CgroupSet) -> ForkLimit:
        """Read the counters of CT ``ctid``'s pids group (from the host's mount namespace)."""
        try:
            return cls(ctid, _number(cgroups.try_read("pids", "pids.current")),
                       _number(cgroups.try_read("pids", "pids.max")))
        except VzError:  # the group is gone (the CT stopped): join and fork say so
            return cls(ctid, None, None)

    def error(self, what: str) -> VzError:
        """The error for a fork refused with EAGAIN while starting ``what`` (``the
        command``, ``the CT's init``): it names the CT and, when the CT is at its limit,
        the parameter numproc and the fix; never an errno."""
        if self.maximum is not None and self.current is not None and self.current >= self.maximum:
            return VzError(
                f"CT {self.ctid}: cannot start {what}: the CT has reached its process limit "
                f"(numproc {self.maximum}); end processes in it or raise the limit with "
                f"'vzctl set {self.ctid} --numproc N'", exit_code=EXIT_RESOURCE)
        return VzError(
            f"CT {self.ctid}: cannot start {what}: the kernel refused a new process (the "
            "CT's process limit, numproc, or the host's kernel.pid_max or kernel.threads-max "
            "is reached)", exit_code=EXIT_RESOURCE)
