"""The view daemon: one process per host serving every running CT's ``user_beancounters``.

``python -m vzcore_beancounters.viewd DIR`` (DIR is ``/run/vz/beancounters``).  vzctl
starts it with the first CT's connection and hands it, for each further CT, the FUSE
connection of the file it mounted in that CT (a descriptor passed over ``DIR/view.sock``).  Each read
of a CT's file renders that CT's rows from the kernel's counters and its state file.
When the last CT stops its connection closes, and the daemon exits: it holds nothing
while no CT runs, and costs one small process, not one per CT.

Exit is race-free with a vzctl handing over a new CT: both sides take ``DIR/view.lock``
(vzctl around "find the daemon, connect, hand over", the daemon around "still idle?
then remove the socket and go").
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from vzcore_beancounters.fuse import Disconnected, FileServer
from vzcore_beancounters.table import proc_size
from vzcore_beancounters.view import LOCKFILE, PIDFILE, SOCKET

IDLE_GRACE = 30.0
"""A daemon that never got a CT within this many seconds of its start exits."""


def render_for(run_dir: Path, ctid: int, record: str) -> bytes:
    from vzcore_beancounters.snapshot import from_state_file
    from vzcore_beancounters.table import proc_text

    return proc_text([(ctid, from_state_file(run_dir, ctid, record))]).encode()


class Daemon:
    """The event loop: the listening socket, handover connections, FUSE connections."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.run_dir = directory.parent
        self.selector = selectors.DefaultSelector()
        self.servers: dict[int, tuple[int, FileServer]] = {}
        self.clients: set[socket.socket] = set()
        self.started = time.monotonic()
        self.listener = self._listen()
        self.had_servers = False

    def _listen(self) -> socket.socket:
        path = self.directory / SOCKET
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o077)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        listener.listen(16)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, "listen")
        return listener

    def run(self) -> None:
        while True:
            for key, _events in self.selector.select(timeout=self._timeout()):
                if key.data == "listen":
                    self._accept()
                elif key.data == "client":
                    self._handover(key.fileobj)  # type: ignore[arg-type]
                else:
                    self._serve(key.data)
            if self._idle() and self._try_exit():
                return

    def _timeout(self) -> float | None:
        if self.servers or self.clients:
            return None
        return max(0.0, IDLE_GRACE - (time.monotonic() - self.started))

    def _idle(self) -> bool:
        if self.servers or self.clients:
            return False
        return self.had_servers or time.monotonic() - self.started >= IDLE_GRACE

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        uid = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)[4:8]
        if int.from_bytes(uid, sys.byteorder) != 0:
            conn.close()
            return
        conn.setblocking(True)
        conn.settimeout(10)
        self.clients.add(conn)
        self.selector.register(conn, selectors.EVENT_READ, "client")

    def add(self, fd: int, ctid: int, record: str, owner: tuple[int, int]) -> None:
        """Serve CT ``ctid``'s file on FUSE connection ``fd``, owned by the CT's root."""
        os.set_blocking(fd, False)
        server = FileServer(fd, lambda: render_for(self.run_dir, ctid, record), proc_size(ctid),
                            owner)
        self.servers[fd] = (ctid, server)
        self.had_servers = True
        self.selector.register(fd, selectors.EVENT_READ, fd)

    def _handover(self, conn: socket.socket) -> None:
        """One CT's connection: ``{"ctid": N, "record": name, "owner": [uid, gid]}`` with
        the /dev/fuse descriptor."""
        self.selector.unregister(conn)
        self.clients.discard(conn)
        try:
            message, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
            if not message:
                return
            request = json.loads(message)
            if len(fds) != 1:
                raise ValueError("no descriptor came with the request")
            uid, gid = (int(n) for n in request["owner"])
            self.add(fds[0], int(request["ctid"]), str(request["record"]), (uid, gid))
            conn.sendall(b"ok\n")
        except Exception as exc:
            for fd in locals().get("fds", []):
                if fd not in self.servers:
                    os.close(fd)
            try:
                conn.sendall(f"error: {exc}\n".encode())
            except OSError:
                pass
        finally:
            conn.close()

    def _serve(self, fd: int) -> None:
        ctid, server = self.servers[fd]
        try:
            server.serve_one()
        except Disconnected:
            self.selector.unregister(fd)
            del self.servers[fd]
            server.close()
        except Exception:
            # A bug must cost one read, not every CT's view.
            print(f"CT {ctid}: {traceback.format_exc()}", file=sys.stderr, flush=True)

    def _try_exit(self, *, force: bool = False) -> bool:
        """Exit if still idle once the lock is held (a vzctl may be connecting)."""
        lock = os.open(self.directory / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and self.selector.select(timeout=0):
            os.close(lock)
            return False
        (self.directory / SOCKET).unlink(missing_ok=True)
        (self.directory / PIDFILE).unlink(missing_ok=True)
        # The lock is released by our exit, after the socket is gone: a vzctl that gets
        # it next finds no daemon and starts one.
        return True

    def shutdown(self) -> None:
        """Close every CT's connection (their files then fail with ENOTCONN instead of
        hanging) and leave."""
        for fd, (_ctid, server) in list(self.servers.items()):
            self.selector.unregister(fd)
            server.close()
        self.servers.clear()
        self._try_exit(force=True)


class _Stop(Exception):
    pass


def main(argv: list[str]) -> int:
    """``viewd DIR [CTID:RECORD:FD:UID:GID]``: the optional argument is the first CT's
    connection, inherited from the vzctl that started the daemon."""
    if len(argv) not in (2, 3):
        print("usage: python -m vzcore_beancounters.viewd DIR [CTID:RECORD:FD:UID:GID]",
              file=sys.stderr)
        return 2
    directory = Path(argv[1])
    daemon = Daemon(directory)
    if len(argv) == 3:
        ctid, record, fd, uid, gid = argv[2].split(":")
        daemon.add(int(fd), int(ctid), record, (int(uid), int(gid)))

    def stop(_signum: int, _frame: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        daemon.run()
    except _Stop:
        daemon.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
