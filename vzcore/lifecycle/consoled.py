"""The console daemon: one process per installation holding every running CT's console.

``python -m vzcore.lifecycle.consoled DIR`` (DIR is ``$VZ_ROOT/run/vz/console``; see
:mod:`vzcore.lifecycle.console`).  vzctl starts it with the first CT's console and hands
it each console over ``DIR/console.sock`` (a ``SOCK_SEQPACKET`` socket; only the host's
root may connect).  Requests are one JSON packet:

``{"op": "add", "ctid": N, "init": [PID, START_TIME]}`` with the master and a slave
    descriptor: serve this console until that init exits.  Answer ``ok``.
``{"op": "spawn", "ctid": N, "names": [...]}`` with three pipe ends
    fork the holder of CT N's start (:func:`vzcore.lifecycle.spawn.holder_in_daemon`), so
    that the daemon, a child subreaper, becomes the parent of the CT's init.  Answer
    ``ok PID``.
``{"op": "attach", "ctid": N}``
    answer ``ok`` (then the recent output, then what the CT writes, as packets; the client
    sends ``i`` + typed bytes and ``w`` + a ``struct winsize``), ``busy PID`` while another
    client is attached, or an error.  The attach ends when the client closes the socket.

The master is read all the time (the CT never blocks on its console); the last
:data:`RING_SIZE` bytes are kept for the next attach.  The daemon holds a slave descriptor
too, so that a CT closing and reopening its console causes no hang-up; a ``vhangup()``
inside (agetty's) still closes every slave for a moment, which only pauses reading.
A console ends when its CT's init exits.  The daemon exits once it serves no
CT and no client and has no CT event pending, under ``DIR/console.lock`` as vzctl takes
it to hand a console over.

The daemon is also how vzcore notices a CT whose init ended on its own (``reboot`` or
``poweroff`` inside, see :mod:`vzcore.lifecycle.event`): it reaps each init it is the
parent of (SIGCHLD), and for each init that exits a thread waits for the CT's lock and,
if the state file still records that init, hands the lock to ``python -m
vzcore.lifecycle.event``, which cleans up (and starts the CT again after a reboot); its
output goes to the daemon's log.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import attrs

from vzcore.lifecycle import event
from vzcore.lifecycle.console import LOCKFILE, PIDFILE, SOCKET
from vzcore.linux import libc
from vzcore.linux.procfs import ProcessId
from vzcore.lock import EVENT_PREFIX

PR_SET_CHILD_SUBREAPER = 36
RING_SIZE = 64 * 1024
"""Bytes of a console's recent output shown on attach (lxc-console keeps a ring buffer too)."""
HANGUP_PAUSE = 0.1
"""Seconds a console's master is left alone after it read EIO (no slave open)."""
IDLE_GRACE = 30.0
"""A daemon that never got a console within this many seconds of its start exits."""


@attrs.define(eq=False)
class Console:
    ctid: int
    master: int
    slave: int
    init: int  # a pidfd of the CT's init
    identity: ProcessId
    ring: bytearray = attrs.field(factory=bytearray)
    client: socket.socket | None = None
    paused_until: float = 0.0  # reading the master stopped after a hang-up, until then

    def keep(self, data: bytes) -> None:
        self.ring += data
        del self.ring[:-RING_SIZE]


class Daemon:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.selector = selectors.DefaultSelector()
        self.consoles: dict[int, Console] = {}
        self.started = time.monotonic()
        self.had_consoles = False
        self.events = 0  # CT events whose threads have not finished
        self.handlers: set[int] = set()  # PIDs of running event handlers
        self.mutex = threading.Lock()  # guards events and handlers
        self.statuses: dict[int, int] = {}  # wait status of inits reaped before their pidfd said so
        self.last_spawn = 0.0  # when a holder was last forked (its init's console follows)
        self.warm = False  # the plugins are imported (_warm)
        self.listener = self._listen()
        self.wakeup = self._on_sigchld()

    def _listen(self) -> socket.socket:
        path = self.directory / SOCKET
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o077)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        listener.listen(16)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, ("listen", None))
        return listener

    def _on_sigchld(self) -> int:
        """Wake the loop on SIGCHLD (an init, a holder or a handler ended) through a pipe."""
        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda _signo, _frame: None)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self.selector.register(read, selectors.EVENT_READ, ("sigchld", None))
        return read

    def _reap(self) -> None:
        """Reap every ended child; keep the wait status of the CTs' inits."""
        try:
            while os.read(self.wakeup, 4096):
                pass
        except BlockingIOError:
            pass
        inits = {c.identity.pid for c in self.consoles.values()}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in inits:
                self.statuses[pid] = status
            with self.mutex:
                self.handlers.discard(pid)

    def run(self) -> None:
        while True:
            self._resume()
            for key, _events in self.selector.select(timeout=self._timeout()):
                kind, console = key.data
                if kind == "listen":
                    self._accept()
                elif kind == "request":
                    self._request(key.fileobj)  # type: ignore[arg-type]
                elif kind == "master":
                    self._output(console)
                elif kind == "client":
                    self._input(console)
                elif kind == "init":
                    self._init_exited(console)
                elif kind == "sigchld":
                    self._reap()
            if self._idle() and self._try_exit():
                return

    def _timeout(self) -> float | None:
        now = time.monotonic()
        if self._busy():
            return 0.5  # to notice the end of events
        if self.consoles:
            paused = [c.paused_until for c in self.consoles.values() if c.paused_until]
            return max(0.0, min(paused) - now) if paused else None
        return max(0.0, IDLE_GRACE - (now - self.started))

    def _pause(self, console: Console) -> None:
        """No slave is open: agetty's vhangup() closes every one until it reopens the
        console, and the master then reads EIO at once.  The CT goes on (its end is told
        by init's pidfd), so stop reading for :data:`HANGUP_PAUSE` instead of spinning."""
        self.selector.unregister(console.master)
        console.paused_until = time.monotonic() + HANGUP_PAUSE

    def _resume(self) -> None:
        now = time.monotonic()
        for console in self.consoles.values():
            if console.paused_until and console.paused_until <= now:
                console.paused_until = 0.0
                self.selector.register(console.master, selectors.EVENT_READ, ("master", console))

    def _busy(self) -> bool:
        with self.mutex:
            return bool(self.events or self.handlers)

    def _idle(self) -> bool:
        if self.consoles or len(self.selector.get_map()) > 2 or self._busy():
            return False
        if time.monotonic() - self.last_spawn < IDLE_GRACE:  # its init's console comes next
            return False
        return self.had_consoles or time.monotonic() - self.started >= IDLE_GRACE

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        if _peer(conn)[1] != 0:  # only the host's root
            conn.close()
            return
        conn.settimeout(10)
        self.selector.register(conn, selectors.EVENT_READ, ("request", None))

    def _request(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        fds: list[int] = []
        try:
            message, fds, _flags, _addr = socket.recv_fds(conn, 4096, 3)
            if not message:
                conn.close()
                return
            request = json.loads(message)
            if request.get("op") == "spawn":
                pid = self._spawn_holder(int(request["ctid"]), [str(n) for n in request["names"]], fds)
                fds = []
                conn.send(f"ok {pid}".encode())
                conn.close()
            elif request.get("op") == "add":
                self.add(int(request["ctid"]), fds, request["init"])
                fds = []
                conn.send(b"ok")
                conn.close()
            elif request.get("op") == "attach":
                self._attach(int(request["ctid"]), conn)
            else:
                raise ValueError(f"unknown request {request.get('op')!r}")
        except Exception as exc:
            for fd in fds:
                os.close(fd)
            try:
                conn.send(f"error: {exc}".encode())
            except OSError:
                pass
            conn.close()

    def _spawn_holder(self, ctid: int, names: list[str], fds: list[int]) -> int:
        """Fork the holder of CT ``ctid``'s start with vzctl's pipe ends ``fds``."""
        from vzcore.lifecycle.spawn import HOLDER_ENDS, holder_in_daemon

        if len(fds) != len(HOLDER_ENDS):
            raise ValueError("the holder's pipe ends must come with the request")
        self._warm()
        pid = os.fork()
        if pid == 0:
            holder_in_daemon(ctid, set(names), dict(zip(HOLDER_ENDS, fds, strict=True)))
        for fd in fds:
            os.close(fd)
        self.last_spawn = time.monotonic()
        return pid

    def _warm(self) -> None:
        """Import the start's modules and the plugins here once, so that each holder
        forked from the daemon finds them loaded (a boot of many CTs forks one per CT)."""
        if self.warm:
            return
        self.warm = True
        try:
            from vzcore.engine import Engine
            from vzcore.lifecycle import start  # noqa: F401  (finish_steps, in the holder)
            from vzcore.paths import Paths

            Engine(Paths.from_environment()).plugins.import_child_modules()
        except Exception as exc:  # the holder loads them again and reports the error
            _log(f"loading the plugins failed: {exc}")

    def add(self, ctid: int, fds: list[int], init: list[int]) -> None:
        """Serve CT ``ctid``'s console (``fds``: master, slave) until ``init`` exits."""
        if len(fds) != 2:
            raise ValueError("the master and a slave descriptor must come with the request")
        identity = ProcessId(int(init[0]), int(init[1]))
        pidfd = os.pidfd_open(identity.pid)
        if not identity.is_alive():  # checked after the pidfd: it then names that process
            os.close(pidfd)
            raise ValueError(f"the init of CT {ctid} is gone")
        if ctid in self.consoles:  # a CT restarted before its old init was seen to exit
            self._drop(self.consoles[ctid])
        master, slave = fds
        os.set_blocking(master, False)
        console = Console(ctid, master, slave, pidfd, identity)
        self.consoles[ctid] = console
        self.had_consoles = True
        self.selector.register(master, selectors.EVENT_READ, ("master", console))
        self.selector.register(pidfd, selectors.EVENT_READ, ("init", console))

    def _attach(self, ctid: int, conn: socket.socket) -> None:
        console = self.consoles.get(ctid)
        if console is None:
            raise ValueError(f"the console daemon holds none of CT {ctid} (the daemon was "
                             "restarted since the CT started, or its start could not hand "
                             "the console over); restart the CT to get one")
        if console.client is not None:
            conn.send(f"busy PID {_peer(console.client)[0]}".encode())
            conn.close()
            return
        conn.setblocking(True)
        conn.settimeout(5)  # a client that stops reading is dropped, not waited for
        conn.send(b"ok")
        if console.ring:
            conn.send(bytes(console.ring))
        console.client = conn
        self.selector.register(conn, selectors.EVENT_READ, ("client", console))

    def _output(self, console: Console) -> None:
        try:
            data = os.read(console.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._pause(console)
            return
        console.keep(data)
        if console.client is not None:
            try:
                console.client.send(data)
            except OSError:
                self._detach(console)

    def _input(self, console: Console) -> None:
        assert console.client is not None
        try:
            packet = console.client.recv(65536)
        except OSError:
            packet = b""
        if not packet:
            self._detach(console)
        elif packet[:1] == b"i":
            _write_all(console.master, packet[1:])
        elif packet[:1] == b"w" and len(packet) == 9:
            try:
                fcntl.ioctl(console.master, termios.TIOCSWINSZ, packet[1:])
            except OSError:
                pass

    def _detach(self, console: Console) -> None:
        if console.client is not None:
            self.selector.unregister(console.client)
            console.client.close()
            console.client = None

    def _drop(self, console: Console) -> None:
        """The CT's init exited: close its console (an attached client sees the end)."""
        self._detach(console)
        if not console.paused_until:
            self.selector.unregister(console.master)
        self.selector.unregister(console.init)
        for fd in (console.master, console.slave, console.init):
            os.close(fd)
        if self.consoles.get(console.ctid) is console:
            del self.consoles[console.ctid]

    def _init_exited(self, console: Console) -> None:
        """The CT's init is gone: drop its console; its wait status (``None`` when the
        daemon is not its parent) says why, handled in a thread."""
        pid = console.identity.pid
        status = self.statuses.pop(pid, None)
        if status is None:
            try:
                reaped, found = os.waitpid(pid, os.WNOHANG)
                status = found if reaped == pid else None
            except ChildProcessError:
                pass
        self._drop(console)
        with self.mutex:
            self.events += 1
        threading.Thread(target=self._event, args=(console.ctid, console.identity, status),
                         name=f"vz-event-{console.ctid}", daemon=True).start()

    def _event(self, ctid: int, init: ProcessId, status: int | None) -> None:
        try:
            self._handle_event(ctid, init, status)
        except Exception as exc:  # a thread's failure must not end the daemon
            _log(f"CT {ctid}: handling the end of its init failed: {exc}")
        finally:
            with self.mutex:
                self.events -= 1

    def _handle_event(self, ctid: int, init: ProcessId, status: int | None) -> None:
        """Wait for the CT's lock; if the state file still records ``init``, hand the lock
        to the event handler (:mod:`vzcore.lifecycle.event`)."""
        from vzcore.engine import Engine
        from vzcore.paths import Paths

        what = event.classify(status)
        engine = Engine(Paths.from_environment())
        state_file = engine.paths.state_file(ctid)
        if not event.records(state_file, init):
            return  # a stop (or a start that failed) cleaned up already
        lock_path = engine.lock_dir / f"{ctid}.lck"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a verb holding it (stop, restart...) goes first
            if not event.records(state_file, init):
                return  # that verb stopped or restarted the CT: it won
            os.ftruncate(lock, 0)
            os.pwrite(lock, f"{os.getpid()}\n{EVENT_PREFIX}{what}\n".encode(), 0)
            _log(f"CT {ctid}: {event.describe(what, status)}")
            handler = subprocess.Popen(  # reaped by _reap
                [sys.executable, "-m", "vzcore.lifecycle.event", str(ctid), str(init.pid),
                 str(init.start_time), what, str(lock)],
                stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr, cwd="/",
                start_new_session=True, pass_fds=(lock,))
            with self.mutex:
                self.handlers.add(handler.pid)
        finally:
            os.close(lock)  # the handler holds its own copy (and so the lock) now

    def _try_exit(self) -> bool:
        """Exit if still idle once the lock is held (a vzctl may be handing over)."""
        lock = os.open(self.directory / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if self.selector.select(timeout=0):
            os.close(lock)
            return False
        (self.directory / SOCKET).unlink(missing_ok=True)
        (self.directory / PIDFILE).unlink(missing_ok=True)
        return True  # the lock goes with our exit, after the socket


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _peer(conn: socket.socket) -> tuple[int, int]:
    """The (PID, UID) of the process at the other end of ``conn``."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return (int.from_bytes(creds[0:4], sys.byteorder), int.from_bytes(creds[4:8], sys.byteorder))


def _write_all(fd: int, data: bytes) -> None:
    """Type ``data`` into the console; what does not fit now (the CT reads nothing) is
    dropped rather than blocking every other console."""
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            return


def main(argv: list[str]) -> int:
    """``consoled DIR [CTID:PID:START_TIME:MASTER:SLAVE]``: the optional argument is the
    first CT's console (init's identity, descriptors inherited from vzctl)."""
    if len(argv) not in (2, 3):
        print("usage: python -m vzcore.lifecycle.consoled DIR [CTID:PID:START_TIME:MASTER:SLAVE]",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The inits of the holders it forks become its children when the holders exit.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    daemon = Daemon(Path(argv[1]))
    if len(argv) == 3:
        ctid, pid, start_time, master, slave = (int(n) for n in argv[2].split(":"))
        try:
            daemon.add(ctid, [master, slave], [pid, start_time])
        except (ValueError, OSError) as exc:  # its init is gone already: serve the next ones
            print(f"CT {ctid}: {exc}", file=sys.stderr, flush=True)
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
