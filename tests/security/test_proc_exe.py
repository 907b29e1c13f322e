"""A CT cannot reach vzctl's process or the host's interpreter through /proc (issue 19,
item 8; runc CVE-2016-9962 and CVE-2019-5736).

Between its fork inside the CT's PID namespace and its exec, the process that ``vzctl
exec`` (and ``stop``'s halt) puts in the CT is the host's Python: ``/proc/PID/exe`` is the
host's interpreter, ``mem`` and ``environ`` are vzctl's.  vzctl holds it at the
``enter:joined`` checkpoint (``VZ_FAULT_PAUSE_AT``) and ``VZ_FAULT_TRACE`` says when it
got there, so the test attacks exactly that window, from inside the CT, in both profiles.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import RunningCt, descendants
from vzcore.testing.pytest_plugin import vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

SECRET = "admin-secret-4711"
"""In the paused vzctl's environment and command line: what the CT must not read."""

HOLD = "600"
"""How long vzctl would stay paused; the test kills it as soon as it is done."""


@pytest.fixture
def paused_joiner(shared_ct: RunningCt, tmp_path: Path) -> Iterator[list[str]]:
    """A ``vzctl exec`` held inside the CT before its exec; yields the PIDs (CT view) of
    every process the CT sees that is not its own (comm ``vzctl`` or ``python*``)."""
    trace = tmp_path / "trace"
    os.mkfifo(trace)  # vzctl writes each checkpoint there as it passes it: no polling
    env = {**shared_ct.env.env, "VZ_FAULT_PAUSE_AT": f"enter:joined:{HOLD}", "VZ_FAULT_TRACE": str(trace),
           "ADMIN_SECRET": SECRET}
    vzctl = subprocess.Popen([vzctl_binary(), "exec", str(shared_ct.ctid), "true", SECRET], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(trace) as points:
            for point in points:
                if point.strip() == "enter:joined":
                    break
            else:
                pytest.fail("vzctl exec ended before it joined the CT")
        listing = shared_ct.sh("ps -o pid,comm").stdout.split("\n")[1:]
        pids = [line.split()[0] for line in listing
                if line.split() and ("vzctl" in line or "python" in line)]
        assert pids, f"the paused joining process is not visible in the CT: {listing}"
        yield pids
    finally:
        killed = descendants(vzctl.pid)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        vzctl.wait(timeout=60)
        # The CT is shared: what vzctl left is reparented to this process (a subreaper),
        # and its zombies would be the next test's "joining processes".
        for pid in killed:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass  # reaped by vzctl


def test_the_host_binary_cannot_be_opened_through_proc_pid_exe(
        shared_ct: RunningCt, paused_joiner: list[str]) -> None:
    for pid in paused_joiner:
        for verb in ("read", "write"):
            verdict = shared_ct.probe(verb, f"/proc/{pid}/exe")
            # Refused by the access check, not saved by ETXTBSY (a busy binary).
            assert verdict in ("EACCES", "EPERM", "ENOENT"), (verb, pid, verdict)


def test_the_joining_process_memory_and_descriptors_are_closed(
        shared_ct: RunningCt, paused_joiner: list[str]) -> None:
    for pid in paused_joiner:
        for name in ("mem", "fd/0", "fd/2", "cwd/.", "root/.", "stack", "syscall"):
            verdict = shared_ct.probe("read", f"/proc/{pid}/{name}")
            assert verdict in ("EACCES", "EPERM", "ENOENT"), (name, pid, verdict)


def test_the_joining_process_environment_is_private(shared_ct: RunningCt,
                                                    paused_joiner: list[str]) -> None:
    """vzctl's environment and command line (the admin's) stay out of the CT's reach: the
    read is refused (userns), or finds the strings wiped (privileged: the host's
    CAP_SYS_ADMIN passes the kernel's read check even on a non-dumpable process)."""
    for pid in paused_joiner:
        for name in ("environ", "cmdline"):
            shown = shared_ct.sh(f"cat /proc/{pid}/{name} | tr '\\0' ' '")
            assert SECRET not in shown.stdout, (name, pid, shown.stdout)
            if shared_ct.profile == "userns":
                assert "Permission denied" in shown.stderr or name == "cmdline", shown.stderr
