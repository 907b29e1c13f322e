"""Named points in the verbs where a test can kill vzctl, to prove crash safety.

``checkpoint("start:init-recorded")`` does nothing unless the environment asks for it:
``VZ_FAULT_KILL_AT=<name>`` makes vzctl SIGKILL itself there (exactly what ``kill -9``
does), ``VZ_FAULT_PAUSE_AT=<name>:<seconds>`` makes it sleep there (to hold a race
window open for a test), and ``VZ_FAULT_TRACE=<file>`` appends every point reached to a
file, so a test can first learn the points a verb passes and then kill it at each one.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "VZ_FAULT_KILL_AT"
PAUSE_ENV = "VZ_FAULT_PAUSE_AT"
TRACE_ENV = "VZ_FAULT_TRACE"


# Opened when vzctl starts, on the host: processes that later enter a CT inherit it.
_TRACE_FD = (os.open(os.environ[TRACE_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
             if os.environ.get(TRACE_ENV) else -1)


def checkpoint(name: str) -> None:
    """Mark a point of no special meaning to users; see the module docstring."""
    if _TRACE_FD >= 0:
        os.write(_TRACE_FD, f"{name}\n".encode())
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get(PAUSE_ENV, "")
    if pause.rpartition(":")[0] == name:
        import time

        time.sleep(float(pause.rpartition(":")[2]))
