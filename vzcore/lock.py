"""The per-CT lock every mutating verb takes (``$LOCKDIR/CTID.lck``).

The lock is an ``flock(2)`` on the file, so it dies with its holder: a killed vzctl never
leaves a stale lock.  The file also says who holds it (``pid`` and the verb, as vzctl's
lock files do) for the message another vzctl prints while it waits in vain.  The
descriptor is close-on-exec and every process vzcore starts inside a CT closes all
descriptors above 2, so the lock never leaks into a CT.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from vzcore.errors import Locked

EVENT_PREFIX = "event-"
"""The verb the console daemon writes while it cleans up a CT whose init ended on its own
(:mod:`vzcore.lifecycle.event`): other verbs wait for it instead of failing."""


class CtLock:
    """``with CtLock(path, ctid, "start"):`` holds CT ``ctid``'s lock or raises :class:`Locked`
    (``wait=True`` waits for it instead)."""

    def __init__(self, path: Path, ctid: int, verb: str, *, wait: bool = False) -> None:
        self.path = path
        self.ctid = ctid
        self.verb = verb
        self.wait = wait
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").split()
            if len(holder) >= 2 and holder[1].startswith(EVENT_PREFIX):
                # The console daemon cleans up after a reboot or halt inside (seconds):
                # wait, then this verb sees the CT as that left it.
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._take(fd)
                return
            os.close(fd)
            who = f" (vzctl pid {holder[0]}, doing '{holder[1]}')" if len(holder) >= 2 else ""
            raise Locked(f"CT {self.ctid} is locked by another vzctl{who}; "
                         "try again when it has finished") from None
        self._take(fd)

    def _take(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{self.verb}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def __enter__(self) -> CtLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
