"""``vzctl console``: the CT's /dev/console is a pty whose output the console daemon keeps
while no one is attached; attach shows it, types into it, detaches with the key, one
user at a time, and refuses a stopped CT (issue 14)."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
from collections.abc import Iterator

import attrs
import pytest

from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.crash import leftovers
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

LONG_WAIT = 60.0
"""Only a safety net for a hung vzctl; no assertion depends on time."""

BOOT_SCRIPT = "#!/bin/sh\necho boot-marker from rcS\n"
"""Run by the busybox init's rcS at start, with init's stdio: the console."""


@attrs.define
class Console:
    """``vzctl console`` running on a pty of the test's, as in an admin's terminal."""

    master: int
    process: subprocess.Popen[bytes]
    seen: bytes = b""

    @classmethod
    def attach(cls, env: VzEnv, *args: str) -> Console:
        master, slave = os.openpty()

        def become_controlling() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        process = subprocess.Popen([vzctl_binary(), "console", "101", *args], env=env.env,
                                   stdin=slave, stdout=slave, stderr=slave,
                                   start_new_session=True, preexec_fn=become_controlling)
        os.close(slave)
        return cls(master, process)

    def read_until(self, marker: bytes) -> bytes:
        """What the terminal showed up to ``marker`` (which must come)."""
        while marker not in self.seen:
            ready, _, _ = select.select([self.master], [], [], LONG_WAIT)
            assert ready, f"no {marker!r} on the console; it showed {self.seen!r}"
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: vzctl exited
                data = b""
            assert data, f"vzctl console ended before {marker!r}; it showed {self.seen!r}"
            self.seen += data
        return self.seen

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def finish(self) -> int:
        """vzctl's exit status once it exited (reading the terminal until then)."""
        code = self.process.wait(timeout=LONG_WAIT)
        while select.select([self.master], [], [], 0)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.seen += data
        os.close(self.master)
        return code


@pytest.fixture(params=sorted(PROFILES))
def ct(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl) -> Iterator[int]:
    """CT 101 in each profile, whose boot prints a line on its console."""
    vzctl("create", 101, "--ostemplate", "busybox", *profile_options(vz_env, request.param))
    script = vz_env.private(101) / "etc/init.d/S10marker"
    script.write_text(BOOT_SCRIPT)
    script.chmod(0o755)
    owner = vz_env.private(101).stat()
    os.chown(script, owner.st_uid, owner.st_gid)
    vzctl("start", 101)
    yield 101


def test_console_shows_boot_output_types_detaches_and_is_exclusive(
        vz_env: VzEnv, vzctl: Vzctl, ct: int) -> None:
    # init's stdio is /dev/console, a pseudo-terminal slave (majors 136-143), not /dev/null
    assert vzctl("exec", ct, "readlink /proc/1/fd/1").stdout == "/dev/console\n"
    major = int(vzctl("exec", ct, "stat -c %t /dev/console").stdout, 16)
    assert 136 <= major <= 143, major
    vzctl("exec", ct, "echo written before attach > /dev/console")

    first = Console.attach(vz_env)
    # The ring buffer: what init's rcS and a command wrote while no one was attached.
    first.read_until(b"boot-marker from rcS")
    first.read_until(b"written before attach")

    # Live output, and a line typed on the console read by a process inside.
    vzctl("exec", ct, "(head -n 1 </dev/console >/tmp/typed; echo reader got it >/dev/console) &")
    first.type(b"typed on the console\r")  # queued on the tty until head reads it
    first.read_until(b"reader got it")

    second = subprocess.run([vzctl_binary(), "console", str(ct)], env=vz_env.env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=LONG_WAIT, check=False)
    assert second.returncode == 9, second.stderr
    assert f"CT {ct}" in second.stderr and "in use" in second.stderr

    first.type(b"\x1b.")  # Esc . at the start of a line (after the \r typed above)
    assert first.finish() == 0
    assert b"Detached from the console of CT 101" in first.seen
    assert vzctl("exec", ct, "cat /tmp/typed").stdout == "typed on the console\n"

    # Detached: the CT runs on; what it writes meanwhile is shown on the next attach, which
    # a single control key ends.
    vzctl("exec", ct, "echo while detached > /dev/console")
    again = Console.attach(vz_env, "--detach-key", "^]")
    again.read_until(b"while detached")
    again.type(b"\x1d")
    assert again.finish() == 0

    vzctl("stop", ct)
    refused = vzctl("console", ct, check=False)
    assert refused.returncode == 31, refused.stderr
    assert f"CT {ct} is not running" in refused.stderr
    assert leftovers(vz_env, ct) == []


def test_console_sees_the_ct_stop(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    attached = Console.attach(vz_env)
    attached.read_until(b"detach with")
    vzctl("stop", busybox_ct)
    assert attached.finish() == 0
    assert b"CT 101 stopped; its console is gone" in attached.seen


def test_bad_detach_key_is_refused(vzctl: Vzctl, busybox_ct: int) -> None:
    result = vzctl("console", busybox_ct, "--detach-key", "x", check=False)
    assert result.returncode == 21
    assert "CT 101" in result.stderr and "--detach-key" in result.stderr and "^]" in result.stderr
