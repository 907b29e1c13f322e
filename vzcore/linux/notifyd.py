"""The seccomp supervisor: one host daemon answering every CT's intercepted calls.

Run as ``python -m vzcore.linux.notifyd DIRECTORY`` through :class:`vzcore.linux.daemon.Daemon`
(record, lock, log and the control socket ``notify.sock`` in ``DIRECTORY``).  Two processes:

*keeper* (the recorded daemon)
    holds a copy of every CT's listener descriptor and does nothing that can fail on a
    CT's input but accept hand-overs: requests on the control socket (vzctl registers a
    CT's figures at its start, the start's builder hands over the CT's own hand-over socket,
    vzctl drops the CT at its stop) and listeners on each CT's hand-over socket
    (``/dev/.vznotify`` inside the CT: its init's and every ``vzctl exec``'s).  A listener
    is accepted only from a process in the CT's PID namespace and only when it is one.
    It forks the worker and sends it every CT and listener; when the worker dies it forks
    a new one and sends everything again.
*worker*
    polls every listener and answers (:func:`vzcore.linux.notify_answers.answer`).  It
    closes a listener whose filter has no process left (``POLLHUP``) and tells the keeper
    to close its copy.

So a killed or crashed worker loses nothing: the keeper's copies keep every filter's
listener open (the CT's calls wait instead of failing with ``ENOSYS``) and the new worker
answers them.  A call the old worker had taken but not answered would wait for good (the
kernel offers no way to take a notification again): the keeper interrupts every CT thread
that waits in an intercepted call (``PTRACE_SEIZE`` and ``PTRACE_INTERRUPT``, then
``PTRACE_DETACH``: no signal, nothing the CT's programs see), and the kernel restarts the
call, which the new worker then answers (:func:`interrupt_waiters`).  If the
keeper itself is killed (``SIGKILL``), the worker keeps answering the CTs it has until
their processes are gone, and the next start runs a new keeper; a ``vzctl exec`` in a CT
of the old keeper then finds no hand-over socket and runs without interception.
``SIGTERM`` to the keeper ends both.

Messages on the control socket (``SOCK_SEQPACKET``, one JSON object each, answered with one):
``{"op": "register", "ct": {CtFigures}}``, ``{"op": "root", "ctid": N, "init": [PID,
START]}`` with the hand-over socket's descriptor, ``{"op": "drop", "ctid": N}`` (answered
with the number of CTs left), ``{"op": "status"}`` (the worker's PID and each CT's listener
count).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from typing import Any

import attrs

from vzcore.linux import seccomp_notify
from vzcore.linux.notify_answers import NUMBERS, CtFigures, answer
from vzcore.linux.procfs import ProcessId

SOCKET_NAME = "notify.sock"
HANDOVER_NAME = ".vznotify"
"""The hand-over socket's name in the CT's ``/dev`` (a tmpfs of the CT's own)."""
MAX_LISTENERS = 4096
"""Listeners one CT may hand over (each ``vzctl exec`` adds one until its processes exit)."""
_MAX_MESSAGE = 65536
_PEERCRED = struct.Struct("=iII")


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} notifyd[{os.getpid()}]: {message}",
          file=sys.stderr, flush=True)


def _receive(sock: socket.socket, max_fds: int = 1) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the descriptors it carries (``None``: end of file)."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, max_fds)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], fds or [])


_libc = ctypes.CDLL(None, use_errno=True)
_PTRACE_DETACH = 17
_PTRACE_SEIZE = 0x4206
_PTRACE_INTERRUPT = 0x4207
_WALL = 0x40000000


def _ptrace(request: int, tid: int) -> bool:
    return int(_libc.ptrace(ctypes.c_long(request), ctypes.c_int(tid), ctypes.c_void_p(0),
                            ctypes.c_void_p(0))) == 0


def waiting_threads(pidns: int, numbers: set[int]) -> list[int]:
    """Threads of the processes in PID namespace ``pidns`` now inside one of the system
    calls ``numbers`` (``/proc/TID/syscall``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or _pidns(int(entry)) != pidns:
            continue
        try:
            tids = os.listdir(f"/proc/{entry}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{entry}/task/{tid}/syscall") as f:
                    first = f.read().split(maxsplit=1)
            except OSError:
                continue
            if first and first[0].isdigit() and int(first[0]) in numbers:
                found.append(int(tid))
    return found


def interrupt_waiters(pidns: int, numbers: set[int]) -> int:
    """Make every thread of ``pidns`` waiting in one of the calls ``numbers`` restart it:
    attached with ``PTRACE_SEIZE`` (no stop, no signal), woken by ``PTRACE_INTERRUPT``
    (its wait ends with ``ERESTARTSYS``), detached once stopped (the kernel then restarts
    the call).  A thread traced by someone else (a debugger in the CT) is left alone.
    Returns how many were interrupted."""
    count = 0
    for tid in waiting_threads(pidns, numbers):
        if not _ptrace(_PTRACE_SEIZE, tid):
            continue
        try:
            if _ptrace(_PTRACE_INTERRUPT, tid):
                try:
                    os.waitpid(tid, _WALL)
                except ChildProcessError:
                    pass
                count += 1
        finally:
            _ptrace(_PTRACE_DETACH, tid)
    return count


def _pidns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


@attrs.define
class _Ct:
    """The keeper's view of one CT."""

    figures: CtFigures
    handover: socket.socket | None = None
    pidfd: int | None = None
    pidns: int | None = None
    listeners: dict[int, int] = attrs.Factory(dict)

    def close(self) -> None:
        if self.handover is not None:
            self.handover.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        for fd in self.listeners.values():
            os.close(fd)
        self.listeners.clear()


class _Stop(Exception):
    """SIGTERM or SIGINT reached the keeper."""


class Keeper:
    """The recorded daemon (see the module's description)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        path = os.path.join(directory, SOCKET_NAME)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.control.bind(path)
        os.chmod(path, 0o600)
        self.control.listen(64)
        self.cts: dict[int, _Ct] = {}
        self.next_id = 1
        self.worker_pid = 0
        self.channel: socket.socket | None = None
        self.stopping = False

    # -- the worker ---------------------------------------------------------------------

    def fork_worker(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                mine.close()
                self.control.close()
                for ct in self.cts.values():
                    ct.close()  # the worker gets its own copies below, over the channel
                _log("worker started")
                Worker(theirs).run()
                os._exit(0)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
        theirs.close()
        self.worker_pid = pid
        self.channel = mine
        for ctid, ct in self.cts.items():
            self._to_worker({"op": "ct", "ct": self._worker_view(ct)})
            for lid, fd in ct.listeners.items():
                self._to_worker({"op": "listener", "ctid": ctid, "id": lid}, [fd])

    @staticmethod
    def _worker_view(ct: _Ct) -> dict[str, Any]:
        init = ct.figures.init
        return {**ct.figures.to_json(), "init": [init.pid, init.start_time] if init else None}

    def _to_worker(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        if self.channel is None:
            return
        try:
            _send(self.channel, message, fds)
        except OSError:
            pass  # it died: the channel's end of file re-forks it and sends everything

    def _worker_message(self) -> None:
        assert self.channel is not None
        try:
            message, _fds = _receive(self.channel, 0)
        except (OSError, ValueError):
            message = None
        if message is None:
            self.channel.close()
            self.channel = None
            os.waitpid(self.worker_pid, 0)
            _log(f"worker {self.worker_pid} died; starting another")
            if not self.stopping:
                self.fork_worker()
                self._restart_waiting_calls()
            return
        if message.get("op") == "hup":
            ct = self.cts.get(int(message["ctid"]))
            fd = ct.listeners.pop(int(message["id"]), None) if ct else None
            if fd is not None:
                os.close(fd)

    def _restart_waiting_calls(self) -> None:
        """The calls the dead worker took but never answered would wait for good: have
        every waiting one restarted (a call still queued is restarted too: harmless)."""
        numbers = set(NUMBERS.values())
        own = _pidns(os.getpid())
        for ctid, ct in self.cts.items():
            # A CT sharing the host's PID namespace (an OCI container) would have every host
            # process scanned and possibly attached: its waiters stay as they are.
            if ct.pidns is not None and ct.pidns != own and ct.listeners:
                count = interrupt_waiters(ct.pidns, numbers)
                if count:
                    _log(f"CT {ctid}: restarted {count} waiting call(s)")

    # -- requests -----------------------------------------------------------------------

    def _control_request(self) -> None:
        conn, _addr = self.control.accept()
        with conn:
            conn.settimeout(5)
            try:
                message, fds = _receive(conn)
                if message is None:
                    return
                reply = self._handle(message, fds)
            except Exception as exc:  # a bad request must not end the keeper
                reply = {"ok": False, "error": str(exc)}
            try:
                _send(conn, reply)
            except OSError:
                pass

    def _handle(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        op = message.get("op")
        if op == "register":
            figures = CtFigures.from_json(message["ct"])
            self._drop(figures.ctid)
            self.cts[figures.ctid] = _Ct(figures)
            self._to_worker({"op": "ct", "ct": self._worker_view(self.cts[figures.ctid])})
            return {"ok": True}
        if op == "root":
            ctid = int(message["ctid"])
            if len(fds) != 1 or ctid not in self.cts:
                for fd in fds:
                    os.close(fd)
                return {"ok": False, "error": f"CT {ctid} is not registered"}
            ct = self.cts[ctid]
            init = ProcessId(*message["init"])
            ct.handover = socket.socket(fileno=fds[0])
            ct.handover.setblocking(False)
            ct.figures.init = init
            try:
                ct.pidfd = os.pidfd_open(init.pid)
            except OSError:
                pass
            ct.pidns = _pidns(init.pid)
            if ct.pidfd is None or not init.is_alive() or ct.pidns is None:
                self._drop(ctid)
                return {"ok": False, "error": f"CT {ctid}: its init is gone"}
            self._to_worker({"op": "ct", "ct": self._worker_view(ct)})
            return {"ok": True}
        if op == "drop":
            self._drop(int(message["ctid"]))
            return {"ok": True, "cts": len(self.cts)}
        if op == "status":
            return {"ok": True, "worker": self.worker_pid,
                    "cts": {str(c): len(ct.listeners) for c, ct in self.cts.items()}}
        return {"ok": False, "error": f"unknown request {op!r}"}

    def _drop(self, ctid: int) -> None:
        ct = self.cts.pop(ctid, None)
        if ct is not None:
            ct.close()
            self._to_worker({"op": "drop", "ctid": ctid})

    def _handover(self, ctid: int) -> None:
        """A process of the CT hands over a listener on the CT's hand-over socket."""
        ct = self.cts[ctid]
        assert ct.handover is not None
        try:
            conn, _addr = ct.handover.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(2)  # a CT process that connects and says nothing stalls no one long
            fds: list[int] = []
            try:
                pid, _uid, _gid = _PEERCRED.unpack(
                    conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
                _data, fds, _flags, _addr = socket.recv_fds(conn, 16, 1)
                error = None
                if _pidns(pid) != ct.pidns:
                    error = "not a process of the CT"
                elif len(fds) != 1 or not seccomp_notify.is_listener(fds[0]):
                    error = "not a seccomp listener"
                elif len(ct.listeners) >= MAX_LISTENERS:
                    error = f"the CT has {MAX_LISTENERS} listeners already"
                if error is not None:
                    conn.sendall(f"NO {error}".encode())
                    return
                lid, self.next_id = self.next_id, self.next_id + 1
                ct.listeners[lid] = fds.pop()
                self._to_worker({"op": "listener", "ctid": ctid, "id": lid}, [ct.listeners[lid]])
                conn.sendall(b"OK")
            except OSError:
                pass
            finally:
                for fd in fds:
                    os.close(fd)

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._terminate)
        signal.signal(signal.SIGINT, self._terminate)
        self.fork_worker()
        _log(f"keeper serving {self.directory}")
        try:
            self._loop()
        except _Stop:
            pass
        self.stopping = True
        self._to_worker({"op": "exit"})
        for ct in self.cts.values():
            ct.close()

    def _loop(self) -> None:
        while True:
            poller = select.poll()
            sources: dict[int, tuple[str, int]] = {self.control.fileno(): ("control", 0)}
            if self.channel is not None:
                sources[self.channel.fileno()] = ("worker", 0)
            for ctid, ct in self.cts.items():
                if ct.handover is not None:
                    sources[ct.handover.fileno()] = ("handover", ctid)
                if ct.pidfd is not None:
                    sources[ct.pidfd] = ("init", ctid)
            for fd in sources:
                poller.register(fd, select.POLLIN)
            for fd, _event in poller.poll():
                kind, ctid = sources[fd]
                if kind == "control":
                    self._control_request()
                elif kind == "worker":
                    if self.channel is not None and self.channel.fileno() == fd:
                        self._worker_message()
                elif ctid in self.cts:
                    if kind == "handover":
                        self._handover(ctid)
                    else:  # the CT's init exited: its CT is gone
                        _log(f"CT {ctid}: init exited; dropping its listeners")
                        self._drop(ctid)

    def _terminate(self, _signum: int, _frame: object) -> None:
        # Raised, not flagged: Python restarts an interrupted poll() (PEP 475).
        raise _Stop


class Worker:
    """Answers the notifications of every listener the keeper sent."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.cts: dict[int, CtFigures] = {}
        self.listeners: dict[int, tuple[int, int]] = {}  # fd: (ctid, id)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        poller = select.poll()
        poller.register(self.channel.fileno(), select.POLLIN)
        orphan = False
        while True:
            for fd, event in poller.poll():
                if fd == self.channel.fileno():
                    if not self._keeper_message(poller):
                        if not orphan:
                            _log("the keeper is gone: serving the listeners left, no others")
                        orphan = True
                        poller.unregister(fd)
                elif event & select.POLLIN:
                    self._notification(fd)
                elif event & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self._close(poller, fd, tell=not orphan)
            if orphan and not self.listeners:
                return

    def _keeper_message(self, poller: select.poll) -> bool:
        try:
            message, fds = _receive(self.channel)
        except (OSError, ValueError):
            return False
        if message is None:
            return False
        op = message.get("op")
        if op == "ct":
            figures = CtFigures.from_json(message["ct"])
            if message["ct"].get("init"):
                figures.init = ProcessId(*message["ct"]["init"])
            old = self.cts.get(figures.ctid)
            if old is not None:
                old.close()
            self.cts[figures.ctid] = figures
        elif op == "listener" and fds:
            self.listeners[fds[0]] = (int(message["ctid"]), int(message["id"]))
            poller.register(fds[0], select.POLLIN)
        elif op == "drop":
            ctid = int(message["ctid"])
            dropped = self.cts.pop(ctid, None)
            if dropped is not None:
                dropped.close()
            for fd in [fd for fd, (c, _lid) in self.listeners.items() if c == ctid]:
                self._close(poller, fd, tell=False)
        elif op == "exit":
            os._exit(0)
        else:
            for fd in fds:
                os.close(fd)
        return True

    def _close(self, poller: select.poll, fd: int, tell: bool) -> None:
        ctid, lid = self.listeners.pop(fd)
        poller.unregister(fd)
        os.close(fd)
        if tell:
            try:
                _send(self.channel, {"op": "hup", "ctid": ctid, "id": lid})
            except OSError:
                pass

    def _notification(self, listener: int) -> None:
        notification = seccomp_notify.receive(listener)
        if notification is None:
            return
        ct = self.cts.get(self.listeners[listener][0])
        try:
            if ct is None:
                seccomp_notify.continue_call(listener, notification.id)
            else:
                answer(listener, ct, notification)
        except Exception:  # one odd call must not end the answers to every CT
            _log(f"answering {notification}: {traceback.format_exc()}")
            try:
                seccomp_notify.continue_call(listener, notification.id)
            except OSError:
                pass


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m vzcore.linux.notifyd DIRECTORY", file=sys.stderr)
        return 2
    Keeper(argv[1]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
