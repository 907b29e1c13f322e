"""Processes that ``vzctl exec`` starts in the background keep running under the CT's init
(issue 14), as under OpenVZ, ``lxc-attach`` and ``docker exec``; ``vzctl exec`` still
returns when its command ends, even while such a process holds its stdout pipe.

Each sleep lasts far longer than any test: a vzctl that waited for it would time out
(the failure), and one whose sleep died would leave none to find; no assertion depends
on time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from vzcore.linux.procfs import ProcessId
from vzcore.runtime import State
from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.crash import leftovers
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

CASES = {
    # sleep inherits vzctl's stdout and stderr pipes (and stdin): exec must not wait for it
    "3001": "sleep 3001 &",
    "3002": "nohup sleep 3002 >/dev/null 2>&1 &",
    "3003": 'sh -c "sleep 3003" >/dev/null 2>&1 </dev/null &',
}
"""The three command lines of the issue, by the sleep's argument."""

NOHUP = "#!/bin/sh\ntrap '' HUP\nexec \"$@\"\n"
"""nohup(1) as coreutils does it (ignore SIGHUP, exec the command): Debian's static
busybox has no nohup applet."""

EXEC_TIMEOUT = 120
"""Only a safety net: a vzctl that waits for a 3000 s sleep fails the test by it."""


def _install_nohup(vz_env: VzEnv, ctid: int) -> None:
    path = vz_env.private(ctid) / "usr/bin/nohup"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NOHUP)
    path.chmod(0o755)
    owner = vz_env.private(ctid).stat()
    os.chown(path, owner.st_uid, owner.st_gid)


def _processes(pid_ns: str, init: int) -> dict[int, list[str]]:
    """The host PIDs and argv of the CT's processes (in PID namespace ``pid_ns``) but init."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == init:
            continue
        try:
            if os.readlink(entry / "ns/pid") == pid_ns:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().decode().split("\0")[:-1]
        except OSError:  # gone meanwhile
            continue
    return found


def _sleeps(pid_ns: str, init: int, numbers: set[str]) -> dict[str, int]:
    """The host PIDs of the CT's ``sleep N`` processes for each N of ``numbers``, once each
    has exec'd sleep (the shell that forked one may have returned a moment before the
    exec: the process is there, as the CT init's child, still under the shell's name)."""
    deadline = time.monotonic() + EXEC_TIMEOUT  # a safety net only
    while True:
        found = {pid: argv for pid, argv in _processes(pid_ns, init).items()
                 if any(n in " ".join(argv) for n in numbers)}
        sleeps = {argv[1]: pid for pid, argv in found.items() if argv[:1] == ["sleep"]}
        if len(found) == len(sleeps) and set(sleeps) == numbers:
            return sleeps
        assert time.monotonic() < deadline, f"running after exec returned: {found}"
        time.sleep(0.01)


def _ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid in /proc/{pid}/status")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_background_processes_of_exec_live_on_under_the_cts_init(
        vz_env: VzEnv, vzctl: Vzctl, profile: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", *profile_options(vz_env, profile))
    _install_nohup(vz_env, 101)
    vzctl("start", 101)
    state = State.load(vz_env.state(101), 101)
    assert state is not None and state.init is not None
    init = state.init.pid
    pid_ns = os.readlink(f"/proc/{init}/ns/pid")

    for command in CASES.values():
        result = vzctl("exec2", 101, command, check=False, timeout=EXEC_TIMEOUT)
        assert result.returncode == 0, f"{command!r}: {result.stderr}"

    sleeps = _sleeps(pid_ns, init, set(CASES))
    for number, pid in sleeps.items():
        assert _ppid(pid) == init, f"sleep {number}: its parent is not the CT's init {init}"
    identities = [ProcessId.of(pid) for pid in sleeps.values()]  # not fooled by a reused PID

    inside = vzctl("exec", 101, "ps -o pid,ppid,args").stdout
    seen = {line.split()[3]: line.split()[1] for line in inside.splitlines()[1:]
            if line.split()[2:3] == ["sleep"]}
    assert seen == dict.fromkeys(CASES, "1"), f"the CT's ps shows:\n{inside}"

    vzctl("stop", 101)
    assert not any(p is not None and p.is_alive() for p in identities)
    assert leftovers(vz_env, 101) == []


def test_exec_returns_the_commands_output_and_status_with_a_writer_left_behind(
        vzctl: Vzctl, busybox_ct: int) -> None:
    """What the command wrote is all copied; a background process that keeps writing to
    the same pipe neither holds vzctl nor mixes into a later command's output."""
    vzctl("start", busybox_ct)
    command = "head -c 300000 /dev/zero | tr '\\0' x; yes >/dev/null & " \
              "(while :; do echo late; done) & exit 5"
    result = vzctl("exec2", busybox_ct, command, check=False, timeout=EXEC_TIMEOUT)
    assert result.returncode == 5
    assert result.stdout.startswith("x" * 300000)
    assert set(result.stdout[300000:].split()) <= {"late"}
    assert vzctl("exec", busybox_ct, "echo next").stdout == "next\n"


def test_exec_on_a_terminal_returns_when_its_command_ends(
        vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    """``exec -t``: a nohup'd background process keeps the CT's pty open; vzctl returns
    anyway, and the process (immune to the shell's hang-up) runs on under init."""
    _install_nohup(vz_env, busybox_ct)
    vzctl("start", busybox_ct)
    # The shell waits until sleep runs (nohup has set SIGHUP ignored by then): the hang-up
    # of the exiting shell's terminal reaches its background jobs, as over ssh -t.
    command = "nohup sleep 3004 & until pidof sleep >/dev/null; do :; done; echo started"
    result = vzctl("exec2", "-t", busybox_ct, command, check=False, timeout=EXEC_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
    state = State.load(vz_env.state(busybox_ct), busybox_ct)
    assert state is not None and state.init is not None
    sleeps = _sleeps(os.readlink(f"/proc/{state.init.pid}/ns/pid"), state.init.pid, {"3004"})
    assert _ppid(sleeps["3004"]) == state.init.pid
