"""A CT must never reach the admin's terminal (issue 19, item 1; runc CVE-2016-9962's
TIOCSTI sibling, LXC CVE-2017-5226).

vzctl runs here on a real pseudo-terminal that is its controlling terminal, as in an
admin's shell.  The CT program (``probe tiocsti``) pushes input with ``TIOCSTI`` through
``/dev/tty`` and its stdio; whatever it managed to push would wait in the terminal's
input queue for the admin's shell to read, so after vzctl exits the test reads that
queue: it must be empty.  ``TIOCSTI`` is synchronous, so no wait is involved.

Because ``dev.tty.legacy_tiocsti=0`` makes the kernel refuse TIOCSTI to the unprivileged
whatever vzcore does, the tests also check the cause from the host: a joined process has
no controlling terminal (``tty_nr`` 0 in ``/proc/PID/stat``) and a session that is not
vzctl's, and ``/dev/tty`` fails with ENXIO inside.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import termios
import tty
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.security.conftest import RunningCt, descendants
from vzcore.testing.pytest_plugin import VzEnv, vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

PROBE = "/usr/local/bin/probe"
TEXT = "echo INJECTED"
LONG_WAIT = 60.0
"""Only a safety net for a hung vzctl; no assertion depends on time."""


@attrs.define
class Terminal:
    """A pseudo-terminal standing in for the admin's: vzctl's controlling terminal."""

    master: int
    slave: int

    def run(self, env: VzEnv, *args: object, stdin_is_tty: bool = False) -> subprocess.Popen[bytes]:
        """Start vzctl as the session leader of this terminal, with its stdout and stderr
        (and stdin when ``stdin_is_tty``) on it."""
        def become_controlling() -> None:
            fcntl.ioctl(1, termios.TIOCSCTTY, 0)

        return subprocess.Popen([vzctl_binary(), *(str(a) for a in args)], env=env.env,
                                stdin=self.slave if stdin_is_tty else subprocess.DEVNULL,
                                stdout=self.slave, stderr=self.slave, start_new_session=True,
                                preexec_fn=become_controlling)

    def finish(self, process: subprocess.Popen[bytes]) -> tuple[int, str]:
        """Wait for ``process``; its exit status and what it wrote to the terminal."""
        output = b""
        exited = os.pidfd_open(process.pid)  # readable once vzctl exits: no polling
        try:
            while True:
                ready, _, _ = select.select([self.master, exited], [], [], LONG_WAIT)
                assert ready, "vzctl hangs"
                if self.master in ready:
                    output += os.read(self.master, 65536)
                elif exited in ready:
                    break
        finally:
            os.close(exited)
        return process.wait(), (output + _drain(self.master)).decode(errors="replace")

    def typed(self) -> bytes:
        """What waits in the terminal's input queue: what the admin's shell reads next."""
        return _drain(self.slave)

    def read_until(self, marker: bytes) -> bytes:
        output = b""
        while marker not in output:
            ready, _, _ = select.select([self.master], [], [], LONG_WAIT)
            assert ready, f"no {marker!r} on the terminal: {output!r}"
            output += os.read(self.master, 65536)
        return output


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except (BlockingIOError, OSError):
        pass
    finally:
        os.set_blocking(fd, True)
    return data


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: what was pushed is readable as it came
    yield Terminal(master, slave)
    os.close(master)
    os.close(slave)


def legacy_tiocsti() -> bool:
    """Whether the kernel lets any process push input into its controlling terminal."""
    path = Path("/proc/sys/dev/tty/legacy_tiocsti")
    return not path.exists() or path.read_text().strip() == "1"


def check_verdicts(line: str) -> None:
    """``probe tiocsti`` output: /dev/tty not there (no controlling terminal), and no
    stdio descriptor a terminal that takes input."""
    verdicts = dict(item.split(":", 1) for item in line.split())
    assert verdicts["tty"] == "ENXIO", line
    assert all(verdicts[fd] != "ok" for fd in "012"), line


COMMANDS = {
    "exec": ("exec", f"{PROBE} tiocsti '{TEXT}'"),
    "exec2": ("exec2", f"{PROBE} tiocsti '{TEXT}'"),
    "exec3": ("exec3", PROBE, "tiocsti", TEXT),
}


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_a_joined_command_cannot_type_into_the_admins_terminal(
        shared_ct: RunningCt, terminal: Terminal, verb: str) -> None:
    verb_name, *command = COMMANDS[verb]
    status, output = terminal.finish(terminal.run(shared_ct.env, verb_name, shared_ct.ctid, *command))
    assert terminal.typed() == b"", "the CT typed into the admin's terminal"
    assert status == (8 if verb == "exec" else 1), output  # the probe failed to inject
    check_verdicts(next(line for line in output.splitlines() if line.startswith("tty:")))


def test_a_joined_command_still_gets_its_stdin_and_stdout(shared_ct: RunningCt,
                                                          terminal: Terminal) -> None:
    os.write(terminal.master, b"hello\n")
    status, output = terminal.finish(terminal.run(
        shared_ct.env, "exec2", shared_ct.ctid, 'read line; echo "got:$line"; echo "err:$line" >&2',
        stdin_is_tty=True))
    assert status == 0, output
    assert "got:hello" in output and "err:hello" in output, output


def session_and_tty(pid: int) -> tuple[int, int]:
    """``session`` and ``tty_nr`` of ``/proc/PID/stat`` (host view)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[3]), int(fields[4])


@pytest.mark.parametrize("with_tty", [False, True], ids=["pipes", "tty"])
def test_joined_processes_share_no_session_or_terminal_with_vzctl(
        shared_ct: RunningCt, terminal: Terminal, with_tty: bool) -> None:
    """The cause, independent of ``dev.tty.legacy_tiocsti``: seen from the host, nothing
    vzctl puts in the CT is in vzctl's session or has the admin's terminal; with ``-t``
    the command's controlling terminal is a pty of the CT's own devpts."""
    flags = ["-t"] if with_tty else []
    vzctl = terminal.run(shared_ct.env, "exec3", *flags, shared_ct.ctid, "/bin/sh", "-c",
                         "echo ready; read line", stdin_is_tty=True)
    try:
        terminal.read_until(b"ready")
        admins = os.fstat(terminal.slave)
        *joiners, command = descendants(vzctl.pid)
        for pid in (*joiners, command):
            assert session_and_tty(pid)[0] != vzctl.pid, f"PID {pid} is in vzctl's session"
        for pid in joiners:
            assert session_and_tty(pid)[1] == 0, f"the joining process {pid} has a terminal"
        session, tty_nr = session_and_tty(command)
        if with_tty:
            # Device numbers repeat across devpts instances: tell them apart by st_dev.
            assert session == command, "exec -t: the command leads no session of its own"
            assert tty_nr != 0, "exec -t gave the command no controlling terminal"
            stdin = os.stat(f"/proc/{command}/fd/0")
            assert os.major(stdin.st_rdev) == os.major(admins.st_rdev), "not a pty"
            assert stdin.st_dev != admins.st_dev, "the command's terminal is the admin's"
        else:
            assert tty_nr == 0, "a joined command has a controlling terminal"
    finally:
        os.write(terminal.master, b"done\n")
        status, output = terminal.finish(vzctl)
    assert status == 0, output
    assert terminal.typed() == b""


def test_exec_tty_gives_the_command_its_own_terminal(shared_ct: RunningCt, terminal: Terminal) -> None:
    """``exec -t``: /dev/tty is the CT's pty, so TIOCSTI lands in the CT's own terminal,
    never in the admin's; the command's output still comes through."""
    status, output = terminal.finish(terminal.run(
        shared_ct.env, "exec3", "--tty", shared_ct.ctid, PROBE, "tiocsti", TEXT, stdin_is_tty=True))
    assert terminal.typed() == b""
    line = next(line for line in output.splitlines() if "tty:" in line)
    if legacy_tiocsti():
        assert "tty:ok" in line, line  # its own pty, which it controls
    assert status in (0, 1), output


def test_a_planted_halt_cannot_type_into_the_admins_terminal(
        ct: RunningCt, terminal: Terminal, vz_env: VzEnv) -> None:
    """``vzctl stop`` runs the CT's halt: a CT that replaced it gets no terminal either."""
    planted = ct.sh(f"rm -f /sbin/halt && printf '%s\\n' '#!/bin/sh' "
                    f"'{PROBE} tiocsti \"{TEXT}\" > /tiocsti.log 2>&1' "
                    "'exec /bin/busybox halt' > /sbin/halt && chmod 755 /sbin/halt")
    assert planted.returncode == 0, planted.stderr
    status, output = terminal.finish(terminal.run(ct.env, "stop", ct.ctid))
    assert status == 0, output
    assert terminal.typed() == b"", "the CT's halt typed into the admin's terminal"
    check_verdicts((vz_env.private(ct.ctid) / "tiocsti.log").read_text())


def test_legacy_tiocsti_setting_is_known(terminal: Terminal) -> None:
    """The host side of the check: the test pty takes TIOCSTI from its own session when
    the kernel allows it, so an empty queue above means vzcore stopped the CT."""
    if not legacy_tiocsti():
        pytest.skip("dev.tty.legacy_tiocsti=0: the kernel refuses TIOCSTI to all but "
                    "CAP_SYS_ADMIN; the session and tty_nr checks above still apply")
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fcntl.ioctl(terminal.slave, termios.TIOCSCTTY, 0)
        for byte in b"x":
            fcntl.ioctl(terminal.slave, termios.TIOCSTI, bytes([byte]))
        os._exit(0)
    os.waitpid(pid, 0)
    assert terminal.typed() == b"x"


def test_the_terminals_interrupt_still_reaches_the_command(shared_ct: RunningCt,
                                                           terminal: Terminal) -> None:
    """In a session of its own the command gets no ^C from the kernel; vzctl passes the
    SIGINT that the terminal sends its process group on to the command's."""
    vzctl = terminal.run(shared_ct.env, "exec3", shared_ct.ctid, "/bin/sh", "-c",
                         "trap 'kill $!; echo interrupted; exit 3' INT; echo ready; "
                         "sleep 600 & wait",
                         stdin_is_tty=True)
    terminal.read_until(b"ready")
    os.killpg(vzctl.pid, signal.SIGINT)  # what ^C on the admin's terminal does
    status, output = terminal.finish(vzctl)
    assert status == 3 and "interrupted" in output, output
