"""Named points in the verbs where a test can kill vzctl, to prove crash safety.

``checkpoint("start:init-recorded")`` does nothing unless the environment asks for it:
``VZ_FAULT_KILL_AT=<name>`` makes vzctl SIGKILL itself there (exactly what ``kill -9``
does), and ``VZ_FAULT_TRACE=<file>`` appends every point reached to a file, so a test can
first learn the points a verb passes and then kill it at each one in turn.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "VZ_FAULT_KILL_AT"
TRACE_ENV = "VZ_FAULT_TRACE"


def checkpoint(name: str) -> None:
    """Mark a point of no special meaning to users; see the module docstring."""
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a") as f:
            f.write(name + "\n")
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
