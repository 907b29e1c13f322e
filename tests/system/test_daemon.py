"""vzcore.linux.daemon on the real kernel: a shared daemon is recorded by PID and start
time, found again, talked to, stopped, and runs in cgroups of its own (never the calling
vzctl's: a logout must not kill it), on cgroup v1, hybrid and v2 hosts alike."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.linux import cgroups
from vzcore.linux.cgroups import CgroupSet
from vzcore.linux.daemon import Daemon, pidfd
from vzcore.linux.procfs import ProcessId
from vzcore.testing.pytest_plugin import VzEnv

pytestmark = [pytest.mark.root, pytest.mark.vm]

ECHO = """
import os, socket, sys, time
directory = sys.argv[1]
child = os.fork()
if child == 0:          # a process the daemon forks stays in its groups too
    time.sleep(3600)
    os._exit(0)
open(os.path.join(directory, "child"), "w").write(str(child))
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(os.path.join(directory, "echo.sock"))
listener.listen(1)
while True:
    conn, _ = listener.accept()
    conn.sendall(conn.recv(100))
    conn.close()
"""


def groups_of(pid: int) -> dict[str, str]:
    """``{hierarchy key: group}`` of process ``pid`` (as :mod:`vzcore.linux.cgroups` keys
    them)."""
    return {h.key: h.own for h in cgroups.hierarchies(pid)}


@pytest.fixture
def echo(vz_env: VzEnv, tmp_path: Path) -> Iterator[Daemon]:
    groups = CgroupSet.plan(vz_env.cgroup_parent, "daemon-echo")
    daemon = Daemon.named(tmp_path / "echo", "echo", cgroups=groups)
    yield daemon
    process = daemon.running()
    if process is not None:
        daemon.stop(process)
    groups.kill()
    groups.remove()


def test_a_daemon_runs_in_its_own_groups_and_is_found_talked_to_and_stopped(echo: Daemon) -> None:
    mine = groups_of(os.getpid())
    with echo.locked():
        child, process = echo.spawn([sys.executable, "-c", ECHO, str(echo.directory)])
    assert child.pid == process.pid
    assert echo.record_file.read_text().split() == [str(process.pid), str(process.start_time)]
    assert echo.running() == process

    with echo.connect(process) as sock:   # waits for the fresh daemon to listen
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"

    grandchild = int((echo.directory / "child").read_text())
    assert echo.cgroups is not None
    for pid in (process.pid, grandchild):
        theirs = groups_of(pid)
        for d in echo.cgroups.dirs:
            # in the daemon's group of every hierarchy, below (never beside) the caller's
            assert theirs[d.key] != mine[d.key]
            assert theirs[d.key].endswith("/daemon-echo")
            assert theirs[d.key].startswith(mine[d.key].rstrip("/") + "/")
    assert {process.pid, grandchild} <= echo.cgroups.pids()

    echo.stop(process)
    child.wait()
    assert echo.running() is None
    assert not echo.remove_cgroups(timeout=0)   # the daemon's own child still holds it
    echo.cgroups.kill()
    assert echo.remove_cgroups()
    assert not any(d.directory.exists() for d in echo.cgroups.dirs)


def test_a_reused_pid_is_never_taken_for_the_daemon(echo: Daemon) -> None:
    me = ProcessId.of(os.getpid())
    assert me is not None
    echo.directory.mkdir(parents=True)
    echo.record(ProcessId(me.pid, me.start_time + 1))   # our PID, another process's start
    assert echo.recorded() == ProcessId(me.pid, me.start_time + 1)
    assert echo.running() is None
    with pytest.raises(ProcessLookupError):
        pidfd(ProcessId(me.pid, me.start_time + 1))
    fd = pidfd(me)
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
    finally:
        os.close(fd)


def test_connect_gives_up_when_the_daemon_is_dead(echo: Daemon) -> None:
    echo.directory.mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        echo.connect(None)
    with pytest.raises(OSError):
        echo.connect(ProcessId(os.getpid(), 1), kind=socket.SOCK_SEQPACKET)


def test_a_daemon_without_cgroups_stays_in_the_callers(tmp_path: Path) -> None:
    daemon = Daemon.named(tmp_path / "plain", "plain")
    with daemon.locked():
        child, process = daemon.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert groups_of(process.pid) == groups_of(os.getpid())
        assert daemon.remove_cgroups()
    finally:
        daemon.stop(process)
        child.wait()
