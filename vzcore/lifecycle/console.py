"""A CT's console: the pseudo-terminal that is its ``/dev/console``, and ``vzctl console``.

At ``vzctl start`` the core opens a pseudo-terminal pair on the host (:func:`open_pty`,
as systemd-nspawn does) before it forks the CT's first processes; the isolation plugin
bind-mounts its slave on the CT's ``/dev/console`` (``run.options[CONSOLE_OPTION]`` names
it) and init gets that as stdio.  Once init runs, vzctl hands the master, a slave
descriptor and init's identity to the console daemon (:mod:`vzcore.lifecycle.consoled`,
one process per installation, started with the first CT's console and exiting after the
last CT's; the same pattern as the beancounters view daemon).  The daemon always reads the
master, so the CT never blocks writing to its console, keeps the last
:data:`~vzcore.lifecycle.consoled.RING_SIZE` bytes for the next attach, and holds a slave
descriptor so that a CT whose init closes and reopens ``/dev/console`` (systemd does) gets
no hang-up.  It drops the CT when init exits.

``vzctl console CTID`` (:func:`attach`) connects to the daemon, shows the recent output,
and copies between the admin's terminal and the console until the detach key
(``Esc .`` at the start of a line, as OpenVZ's vzctl console; ``--detach-key ^X`` for a
single control key).  One user at a time: a second attach is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import sys
import termios
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from vzcore.errors import InvalidValue, Locked, VzError

if TYPE_CHECKING:
    from vzcore.container import Container
    from vzcore.engine import Engine
    from vzcore.linux.procfs import ProcessId

CONSOLE_OPTION = "console"
"""``run.options`` key: the host path of the console pty's slave, which the isolation
plugin bind-mounts on the CT's ``/dev/console``."""
CONSOLE_FD_OPTION = "console_fd"
"""``run.options`` key: the slave's descriptor as the start's child processes hold it
(forked after :func:`open_pty`): the isolation plugin binds the path only if it is still
that pty."""

SOCKET = "console.sock"
PIDFILE = "console.pid"
LOCKFILE = "console.lock"
LOG = "console.log"
READY_TIMEOUT = 10.0

ESCAPE = b"\x1b"
DEFAULT_DETACH = "Esc ."
_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def directory(ct: Container) -> Path:
    """The daemon's directory: socket, pid file, lock and log."""
    return ct.paths.run_dir / "console"


@attrs.define
class ConsolePty:
    """The console pty of a CT being started: the master and a slave descriptor (vzctl
    holds both until the daemon has them) and the slave's host path."""

    master: int
    slave: int
    path: str

    def close(self) -> None:
        """Close vzctl's descriptors (once; the numbers may be reused after)."""
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1


def open_pty(ct: Container) -> ConsolePty:
    """A new pty pair on the host's devpts whose slave the CT's root owns (group ``tty``
    of the CT, mode 0620), so that a getty inside can take it as its terminal."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, b"\0\0\0\0")  # unlockpt
        number = int.from_bytes(fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"), sys.byteorder)
        path = f"/dev/pts/{number}"
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        os.fchown(slave, ct.root_owner[0], ct.tty_group)
        os.fchmod(slave, 0o620)
    except OSError as exc:
        os.close(master)
        raise VzError(f"CT {ct.ctid}: cannot make its console pty: {exc.strerror}") from None
    return ConsolePty(master, slave, path)


# -- the daemon's side of vzctl ---------------------------------------------------------

@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _daemon(path: Path) -> ProcessId | None:
    from vzcore.linux.procfs import ProcessId

    try:
        pid, start_time = (int(w) for w in (path / PIDFILE).read_text().split())
    except (OSError, ValueError):
        return None
    process = ProcessId(pid, start_time)
    return process if process.is_alive() else None


def _spawn(path: Path, prefix: Path, ctid: int, pty: ConsolePty, init: ProcessId) -> ProcessId:
    """Start the daemon with its first CT's console (no waiting for it to listen: it
    reads the master from its first moment on, and the pty buffers until then)."""
    first = f"{ctid}:{init.pid}:{init.start_time}:{pty.master}:{pty.slave}"
    return _start_daemon(path, prefix, [first], (pty.master, pty.slave))


def _start_daemon(path: Path, prefix: Path, args: list[str], fds: tuple[int, ...]) -> ProcessId:
    """Start the daemon of the installation at ``prefix`` (``VZ_ROOT``, even when vzctl
    was given ``--root-dir``: the holders it forks and its event handlers load the CTs)."""
    import subprocess

    from vzcore.linux.procfs import ProcessId

    with open(path / LOG, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "vzcore.lifecycle.consoled", str(path), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd="/",
            start_new_session=True, close_fds=True, pass_fds=fds,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                 # the installation (VZ_ROOT) and plugins, for what a reboot inside runs
                 **{k: v for k, v in os.environ.items()
                    if k.startswith("VZ_") or k == "PYTHONPATH"},
                 "VZ_ROOT": str(prefix)})
    process = ProcessId.of(child.pid)
    if process is None:
        raise VzError(f"the console daemon died at once; see {path / LOG}")
    (path / PIDFILE).write_text(f"{process.pid} {process.start_time}\n")
    return process


def _connect(path: Path, daemon: ProcessId | None) -> socket.socket:
    """Connect to the daemon (waiting for a fresh one to listen)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(path / SOCKET))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if daemon is None or not daemon.is_alive() or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def spawn_holder(ct: Container, names: set[str], ends: dict[str, int]) -> int:
    """Have the daemon (started if none runs) fork the holder of ``ct``'s start with the
    pipe ends ``ends`` (:data:`vzcore.lifecycle.spawn.HOLDER_ENDS`); return its PID.  The
    daemon is then the parent of the CT's init (:mod:`vzcore.lifecycle.event`)."""
    from vzcore.lifecycle.spawn import HOLDER_ENDS

    path = directory(ct)
    try:
        with _locked(path):
            daemon = _daemon(path) or _start_daemon(path, ct.paths.prefix, [], ())
            # The holder copies the daemon's mounts, which must hold the CT root vzctl mounted.
            if os.readlink(f"/proc/{daemon.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
                raise VzError(f"CT {ct.ctid}: the console daemon (PID {daemon.pid}) runs in "
                              "another mount namespace than this vzctl")
            with _connect(path, daemon) as sock:
                request = {"op": "spawn", "ctid": ct.ctid, "names": sorted(names)}
                socket.send_fds(sock, [json.dumps(request).encode()],
                                [ends[end] for end in HOLDER_ENDS])
                sock.settimeout(READY_TIMEOUT)
                answer = sock.recv(4096).decode(errors="replace")
    except OSError as exc:
        raise VzError(f"CT {ct.ctid}: the console daemon does not answer ({exc.strerror}); "
                      f"see {path / LOG}") from None
    kind, _, pid = answer.partition(" ")
    if kind != "ok" or not pid.isdigit():
        raise VzError(f"CT {ct.ctid}: the console daemon could not fork the CT's first "
                      f"process: {answer}")
    return int(pid)


def hand_over(ct: Container, pty: ConsolePty, init: ProcessId) -> None:
    """Give the console of ``ct`` (whose init is ``init``) to the daemon, starting it if
    none runs; vzctl's descriptors are closed here in any case."""
    path = directory(ct)
    answer = "ok"
    try:
        with _locked(path):
            daemon = _daemon(path)
            if daemon is None:
                _spawn(path, ct.paths.prefix, ct.ctid, pty, init)
                return
            with _connect(path, daemon) as sock:
                request = {"op": "add", "ctid": ct.ctid, "init": [init.pid, init.start_time]}
                socket.send_fds(sock, [json.dumps(request).encode()], [pty.master, pty.slave])
                sock.settimeout(READY_TIMEOUT)
                answer = sock.recv(4096).decode(errors="replace")
    except OSError as exc:
        raise VzError(f"CT {ct.ctid}: the console daemon does not answer ({exc.strerror}); "
                      f"see {path / LOG}") from None
    finally:
        pty.close()
    if answer != "ok":
        raise VzError(f"CT {ct.ctid}: the console daemon refused its console: {answer}")


# -- vzctl console ----------------------------------------------------------------------

@attrs.define
class DetachKey:
    """What ends ``vzctl console``: ``Esc .`` typed at the start of a line (OpenVZ's), or
    one control key anywhere (``^]``)."""

    key: bytes
    after_escape: bool

    @classmethod
    def parse(cls, ctid: int, text: str | None) -> DetachKey:
        if text is None or text.lower() in ("esc.", "esc ."):
            return cls(b".", after_escape=True)
        match = re.fullmatch(r"\^([@A-Za-z\[\\\]^_])", text)
        if not match:
            raise InvalidValue(f"CT {ctid}: --detach-key {text!r}: give a control key as ^X "
                               "(for example ^] or ^a), or leave it out for Esc . at the "
                               "start of a line")
        return cls(bytes([ord(match.group(1).upper()) ^ 0x40]), after_escape=False)

    def describe(self) -> str:
        if self.after_escape:
            return "Esc . at the start of a line"
        return "^" + chr(self.key[0] ^ 0x40)


class _KeyFilter:
    """Passes typed bytes on, watching for the detach key."""

    def __init__(self, key: DetachKey) -> None:
        self.key = key
        self.line_start = True
        self.escaped = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to send on, and whether the detach key was typed."""
        out = bytearray()
        for byte in data:
            char = bytes([byte])
            if not self.key.after_escape:
                if char == self.key.key:
                    return bytes(out), True
                out += char
                continue
            if self.escaped:
                self.escaped = False
                if char == self.key.key:
                    return bytes(out), True
                out += ESCAPE
            elif char == ESCAPE and self.line_start:
                self.escaped = True
                continue
            out += char
            self.line_start = char in (b"\r", b"\n")
        return bytes(out), False


def attach(engine: Engine, ct: Container, detach_key: str | None = None) -> int:
    """``vzctl console``: attach the terminal to the running CT's console until the detach
    key; :class:`NotRunning` (31) for a stopped CT, :class:`Locked` (9) while another
    ``vzctl console`` is attached."""
    from vzcore.lifecycle.enter import running

    key = DetachKey.parse(ct.ctid, detach_key)
    running(engine, ct)
    path = directory(ct)
    try:
        sock = _connect(path, _daemon(path))
    except OSError:
        raise VzError(f"CT {ct.ctid} has no console: no console daemon runs (it was stopped "
                      f"or died); restart the CT to get a console back", exit_code=3) from None
    with sock:
        sock.send(json.dumps({"op": "attach", "ctid": ct.ctid}).encode())
        answer = sock.recv(4096).decode(errors="replace")
        if answer.startswith("busy"):
            raise Locked(f"CT {ct.ctid}: its console is in use by another 'vzctl console' "
                         f"({answer.partition(' ')[2]}); detach that one first")
        if answer != "ok":
            raise VzError(f"CT {ct.ctid} has no console: {answer.removeprefix('error: ')}")
        engine.say(f"Attached to the console of CT {ct.ctid}; detach with {key.describe()}")
        ended = _proxy(sock, key)
    engine.say(f"\r\nDetached from the console of CT {ct.ctid}" if not ended
               else f"\r\nCT {ct.ctid} stopped; its console is gone")
    return 0


def _proxy(sock: socket.socket, key: DetachKey) -> bool:
    """Copy between the terminal and the daemon; True when the CT's side ended."""
    import select

    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    keys = _KeyFilter(key)

    def send_size(*_args: object) -> None:
        try:
            size = fcntl.ioctl(stdin, termios.TIOCGWINSZ, b"\0" * 8)
            sock.send(b"w" + size)
        except OSError:
            pass

    if interactive:
        send_size()
        signal.signal(signal.SIGWINCH, send_size)
        tty.setraw(stdin)
    try:
        while True:
            try:
                ready, _, _ = select.select([sock, stdin], [], [])
            except InterruptedError:
                continue
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return True
                while data:
                    data = data[os.write(stdout, data):]
            if stdin in ready:
                typed = os.read(stdin, 4096)
                if not typed:
                    return False  # end of input: nothing more to type, detach
                data, detach = keys.feed(typed)
                if data:
                    sock.send(b"i" + data)
                if detach:
                    return False
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
