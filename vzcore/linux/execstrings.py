"""Wiping the calling process's own argument and environment strings.

``/proc/PID/environ`` and ``/proc/PID/cmdline`` read the memory where the kernel laid out
``execve``'s strings (between ``env_start``/``env_end`` and ``arg_start``/``arg_end`` of
``/proc/PID/stat``).  Holding ``CAP_SYS_ADMIN`` of the host passes the kernel's read
check even on a non-dumpable process, so a privileged CT could read the admin's
environment from a vzctl process that joins it.  The interpreter copied both into
``os.environ`` and ``sys.argv`` at start-up, so zeroing the original strings changes
nothing the process itself uses: what another process reads there is then empty.
"""

from __future__ import annotations

import ctypes

_ARG_START_FIELD = 48
"""``arg_start`` in proc(5)'s numbering of ``/proc/PID/stat``; ``arg_end``, ``env_start``
and ``env_end`` follow it."""


def wipe() -> None:
    """Zero this process's ``execve`` argument and environment strings in place."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    # fields[0] is field 3 (state): the comm before it may hold spaces or parentheses.
    first = _ARG_START_FIELD - 3
    arg_start, arg_end, env_start, env_end = (int(f) for f in fields[first:first + 4])
    for start, end in ((arg_start, arg_end), (env_start, env_end)):
        if 0 < start < end:
            ctypes.memset(start, 0, end - start)
