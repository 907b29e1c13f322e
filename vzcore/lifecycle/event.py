"""A CT whose init ended on its own: ``reboot``, ``poweroff`` or ``halt`` inside, or an init
that exited or was killed.

No vzcore process waits per CT: the console daemon (:mod:`vzcore.lifecycle.consoled`),
one per installation, forks the *holder* of every start (vzctl asks it to), so that each
CT's init is its child once the holder exits (the daemon is a child subreaper), and it
holds a pidfd of every init for its console anyway.  When an init ends, the daemon reaps
it, which gives its wait status (:func:`classify`); it waits for the CT's lock, and if the
state file still records that very init (PID and start time: a ``vzctl stop``, ``restart``
or ``destroy`` that ended it has removed or replaced the record by then, and so wins) it
runs ``python -m vzcore.lifecycle.event`` (:func:`main`) with the lock handed over as a
descriptor.  That does what ``vzctl stop`` does once init is gone
(:func:`vzcore.lifecycle.teardown.teardown`: the CT's processes, every plugin's
``vz_post_stop``, cgroups, the unmount with its action scripts, the state file) and, for a
reboot, starts the CT again, all under that one lock.

The kernel ends the init of a PID namespace in which reboot(2) is called (with
``CAP_SYS_BOOT`` over the namespace's owner) with SIGHUP for a restart and SIGINT for a
halt or power-off, and only init's parent sees that in the wait status: the kernel's
other reports of a process's end (``PIDFD_INFO_EXIT`` of Linux 6.15, taskstats, the proc
connector, ``/proc/PID/stat``) give the exit code of the task, 0 or SIGKILL, not this.
When the daemon is not the parent (it was restarted since the CT started, or the start
forked the holder itself because the daemon could not), the status is unknown and the
CT is cleaned up as stopped; the log says why a reboot could not be told apart.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from vzcore.linux.procfs import ProcessId

REBOOT = "reboot"
HALT = "halt"
EXITED = "exited"
UNKNOWN = "unknown"
"""What ended a CT's init: reboot(2) RESTART (SIGHUP), HALT or POWER_OFF (SIGINT), any
other end (an exit, another signal), or a status the kernel could not give."""

def classify(status: int | None) -> str:
    """:data:`REBOOT`, :data:`HALT`, :data:`EXITED` or :data:`UNKNOWN` for a wait status."""
    if status is None:
        return UNKNOWN
    if os.WIFSIGNALED(status):
        signo = os.WTERMSIG(status)
        if signo == signal.SIGHUP:
            return REBOOT
        if signo == signal.SIGINT:
            return HALT
    return EXITED


def describe(event: str, status: int | None) -> str:
    """The log's words for an event."""
    if event == REBOOT:
        return "rebooted inside (reboot(2): init ended by SIGHUP); starting it again"
    if event == HALT:
        return "halted or powered off inside (reboot(2): init ended by SIGINT); cleaning up"
    if event == EXITED:
        assert status is not None
        how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.WEXITSTATUS(status)}")
        return f"its init ended ({how}); cleaning up as stopped"
    return ("its init ended, but the console daemon is not its parent (the daemon was "
            "restarted since the CT started, or the start could not hand its first process "
            "to it), so a reboot inside cannot be told from a power-off: cleaning up as stopped")


def records(state_file: Path, init: ProcessId) -> bool:
    """Whether the CT's state file still records ``init`` as the init of a run."""
    import json

    try:
        data = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return False
    recorded = data.get("init") or {}
    return (recorded.get("pid"), recorded.get("start_time")) == (init.pid, init.start_time)


def handle(ctid: int, init: ProcessId, event: str, lock_fd: int) -> int:
    """Clean up CT ``ctid`` whose ``init`` ended, and start it again after a reboot; the
    CT's lock is held on ``lock_fd`` (taken by the daemon) and released at the end."""
    from vzcore.engine import Engine
    from vzcore.errors import VzError
    from vzcore.lifecycle.start import start
    from vzcore.lifecycle.teardown import teardown
    from vzcore.paths import Paths

    def say(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)

    engine = Engine(Paths.from_environment(), say=say, warn=say)
    try:
        ct = engine.container(ctid)
        state = engine.state(ct)
        if state is None or state.init != init or state.is_running:
            say(f"CT {ctid}: another command took care of it; nothing to do")
            return 0
        teardown(engine, ct, state, umount=True, what=f"cleanup after {event} inside")
        say(f"CT {ctid} stopped")
        if event == REBOOT:
            start(engine, ct, locked=True)
        return 0
    except VzError as exc:
        say(f"CT {ctid}: {exc}")
        return exc.exit_code or 1
    finally:
        os.close(lock_fd)


def main(argv: list[str]) -> int:
    """``python -m vzcore.lifecycle.event CTID PID START_TIME EVENT LOCK_FD``."""
    if len(argv) != 6 or argv[4] not in (REBOOT, HALT, EXITED, UNKNOWN):
        print("usage: python -m vzcore.lifecycle.event CTID PID START_TIME "
              "reboot|halt|exited|unknown LOCK_FD", file=sys.stderr)
        return 2
    ctid, pid, start_time, lock_fd = int(argv[1]), int(argv[2]), int(argv[3]), int(argv[5])
    return handle(ctid, ProcessId(pid, start_time), argv[4], lock_fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
