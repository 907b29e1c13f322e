"""What every process vzcore execs inside a CT gets: clean signals, no host descriptors."""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Sequence

from vzcore.linux import libc

_PYTHON_IGNORED = (signal.SIGPIPE, signal.SIGXFSZ)
"""Python ignores these; an ignored signal stays ignored across exec, so reset them."""


def prepare_exec() -> None:
    """Reset signal dispositions and mark every descriptor above 2 close-on-exec."""
    for sig in (*_PYTHON_IGNORED, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    libc.close_range_cloexec(3)


def detach(stdio: Sequence[int] | None = None) -> None:
    """In a child forked on its way into a CT: leave vzctl's session (and so the admin's
    controlling terminal) and take ``stdio`` (descriptors, closed here; /dev/null when
    ``None``) as 0, 1 and 2, so that no descriptor of the host's terminal goes in."""
    os.setsid()
    if stdio is None:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        stdio = (null, null, null)
    # Move the sources above 2 first: one of them may itself be 0, 1 or 2.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in stdio]
    for fd in set(stdio):
        os.close(fd)
    for target, fd in enumerate(moved):
        os.dup2(fd, target)
    for fd in set(moved):
        os.close(fd)
