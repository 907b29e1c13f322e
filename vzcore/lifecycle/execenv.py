"""What every process vzcore execs inside a CT gets: clean signals, no host descriptors."""

from __future__ import annotations

import signal

from vzcore.linux import libc

_PYTHON_IGNORED = (signal.SIGPIPE, signal.SIGXFSZ)
"""Python ignores these; an ignored signal stays ignored across exec, so reset them."""


def prepare_exec() -> None:
    """Reset signal dispositions and mark every descriptor above 2 close-on-exec."""
    for sig in (*_PYTHON_IGNORED, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    libc.close_range_cloexec(3)
