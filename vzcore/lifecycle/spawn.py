"""Creating a CT's init: the fork, namespace and sync-pipe protocol of ``vzctl start``.

Three processes take part (the shape runc's nsexec and crun use):

``vzctl`` (host)
    forks the *setup* process, then waits for its messages.
*setup*
    unshares the CT's namespaces (user, mount, uts, ipc, net, and pid for its
    children), says ``U``, and blocks.  vzctl attaches it to the CT's cgroups and runs
    ``vz_setup_host(pid)`` (uid maps, network devices), then releases it with ``R``.
    It unshares the cgroup namespace (now rooted at the CT's own groups), forks *init*,
    reports init's host PID with ``P`` and exits.
*init*
    PID 1 of the new PID namespace.  It waits for ``G``, which vzctl sends only after
    it recorded init's PID and start time in the state file, so that a vzctl killed at
    any moment leaves either no CT process or a recorded one.  Then it runs
    ``vz_setup_child``, ``vz_switch_root`` and ``vz_finalize_child``, closes every
    descriptor above 2, and execs ``/sbin/init``.  An error goes back as ``E`` with a
    JSON message; a successful exec closes the (close-on-exec) pipe, which vzctl reads as
    success.

Both children die when vzctl dies before releasing them: the setup process by
``PR_SET_PDEATHSIG``, init by reading end-of-file on the sync pipe.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import NoReturn

from vzcore.container import Container
from vzcore.errors import BadTemplate, PluginError, VzError
from vzcore.faults import checkpoint
from vzcore.lifecycle.execenv import prepare_exec
from vzcore.linux import libc, namespaces
from vzcore.linux.procfs import ProcessId
from vzcore.runtime import Run

PR_SET_PDEATHSIG = 1
INIT_PATH = "/sbin/init"
INIT_ENV = {
    "container": "vzcore",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/",
    "TERM": "linux",
}

_HEADER = struct.Struct("=cI")


def _send(fd: int, kind: bytes, payload: bytes = b"") -> None:
    os.write(fd, _HEADER.pack(kind, len(payload)) + payload)


def _read_exact(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _receive(fd: int) -> tuple[bytes, bytes] | None:
    """One framed message, or ``None`` at end of file."""
    header = _read_exact(fd, _HEADER.size)
    if len(header) < _HEADER.size:
        return None
    kind, size = _HEADER.unpack(header)
    return kind, _read_exact(fd, size)


def _report(fd: int, exc: BaseException) -> NoReturn:
    """In a child: send ``exc`` to vzctl and exit."""
    if isinstance(exc, PluginError):
        payload = {"plugin": exc.plugin, "hook": exc.hook, "message": exc.message,
                   "exit_code": exc.exit_code}
    elif isinstance(exc, VzError):
        payload = {"message": exc.message, "exit_code": exc.exit_code}
    else:
        payload = {"message": f"{type(exc).__name__}: {exc}"}
    if os.environ.get("VZ_DEBUG_CHILD"):
        payload["traceback"] = traceback.format_exc()
    try:
        _send(fd, b"E", json.dumps(payload).encode())
    finally:
        os._exit(1)


def _child_error(payload: bytes) -> VzError:
    data = json.loads(payload)
    if "traceback" in data:
        print(data["traceback"], file=sys.stderr)
    if "plugin" in data:
        error = PluginError(data["plugin"], data["hook"], data["message"])
        error.exit_code = data.get("exit_code", error.exit_code)
        return error
    return VzError(data["message"], exit_code=data.get("exit_code"))


class InitSpawner:
    """The vzctl side of the protocol.

    :meth:`fork` creates the setup process and starts moving it into the CT's cgroups in
    a background thread: the first cgroup migration after a quiet period waits for an RCU
    grace period (tens of milliseconds on some hosts), and that wait overlaps the mount
    and ``vz_pre_start`` that the engine runs next.  :meth:`finish` does the rest and
    returns init once it has exec'd; :meth:`abort` kills whatever was forked.
    """

    def __init__(self, ct: Container, run: Run, names: Iterable[str],
                 attach: Callable[[int], None]) -> None:
        self.ct = ct
        self.run = run
        self.names = set(names)
        self.attach = attach
        self.setup_pid = 0
        self._attach_error: BaseException | None = None
        self._attacher: threading.Thread | None = None
        self._to_child_w = -1
        self._from_child_r = -1

    def fork(self) -> None:
        first_flags = namespaces.flags_of(self.names - {"cgroup"})
        to_child_r, self._to_child_w = os.pipe2(os.O_CLOEXEC)
        self._from_child_r, from_child_w = os.pipe2(os.O_CLOEXEC)
        vzctl_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        self.setup_pid = os.fork()
        if self.setup_pid == 0:
            _setup_process(self.ct, self.run, vzctl_pid, first_flags, "cgroup" in self.names,
                           to_child_r, self._to_child_w, self._from_child_r, from_child_w)
        os.close(to_child_r)
        os.close(from_child_w)
        self._attacher = threading.Thread(target=self._attach, name="vz-cgroup-attach")
        self._attacher.start()

    def _attach(self) -> None:
        try:
            self.attach(self.setup_pid)
        except BaseException as exc:
            self._attach_error = exc

    def _join_attacher(self) -> None:
        if self._attacher is not None:
            self._attacher.join()
            self._attacher = None
        if self._attach_error is not None:
            raise self._attach_error

    def finish(self, record_init: Callable[[ProcessId], None]) -> ProcessId:
        """Host setup, init's fork and exec; ``record_init`` writes init's identity to the
        state file before init may run."""
        ct, run = self.ct, self.run
        message = _receive(self._from_child_r)
        if message is None or message[0] != b"U":
            raise _unexpected(message, "unsharing namespaces")
        self._join_attacher()
        checkpoint("start:attached")
        run.plugins.run_each("vz_setup_host", ct=ct, run=run, pid=self.setup_pid)
        checkpoint("start:host-setup-done")
        os.write(self._to_child_w, b"R")
        message = _receive(self._from_child_r)
        if message is None or message[0] != b"P":
            raise _unexpected(message, "forking init")
        (init_pid,) = struct.unpack("=I", message[1])
        os.waitpid(self.setup_pid, 0)
        self.setup_pid = 0
        init = ProcessId.of(init_pid)
        if init is None:
            raise VzError(f"CT {ct.ctid}: init process {init_pid} vanished before it was set up")
        record_init(init)
        os.write(self._to_child_w, b"G")
        checkpoint("start:released")
        self._close()
        if init_failure := _receive_final(self._from_child_r):
            raise init_failure
        if not init.is_alive():
            raise BadTemplate(f"CT {ct.ctid}: {INIT_PATH} exited right after it started; "
                              "check the CT's init configuration")
        return init

    def _close(self) -> None:
        if self._to_child_w >= 0:
            os.close(self._to_child_w)
            self._to_child_w = -1

    def abort(self) -> None:
        """Kill the setup process (init, if forked, dies with the CT's cgroups)."""
        if self.setup_pid:
            _kill_and_reap(self.setup_pid)
            self.setup_pid = 0
        try:
            self._join_attacher()
        except BaseException:
            pass
        self.close()

    def close(self) -> None:
        self._close()
        if self._from_child_r >= 0:
            os.close(self._from_child_r)
            self._from_child_r = -1


def _receive_final(fd: int) -> VzError | None:
    """After ``G``: end of file means init exec'd; a message is its setup error."""
    message = _receive(fd)
    return None if message is None else _unexpected(message, "setting up the CT")


def _unexpected(message: tuple[bytes, bytes] | None, step: str) -> VzError:
    if message is None:
        return VzError(f"the CT's first process died while {step}")
    if message[0] == b"E":
        return _child_error(message[1])
    return VzError(f"unexpected message {message[0]!r} while {step}")


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _setup_process(ct: Container, run: Run, vzctl_pid: int, flags: int, cgroup_ns: bool,
                   to_child_r: int, to_child_w: int, from_child_r: int,
                   from_child_w: int) -> NoReturn:
    """The setup process; never returns."""
    try:
        os.close(to_child_w)
        os.close(from_child_r)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != vzctl_pid:
            os._exit(1)
        if flags:
            libc.unshare(flags)
        _send(from_child_w, b"U")
        if os.read(to_child_r, 1) != b"R":
            os._exit(1)
        if cgroup_ns:
            namespaces.unshare(["cgroup"])
        init_pid = os.fork()
        if init_pid == 0:
            _init_process(ct, run, to_child_r, from_child_w)
        _send(from_child_w, b"P", struct.pack("=I", init_pid))
        os._exit(0)
    except BaseException as exc:
        _report(from_child_w, exc)


def _init_process(ct: Container, run: Run, to_child_r: int, from_child_w: int) -> NoReturn:
    """The CT's init before it execs; never returns."""
    plugins = run.plugins
    try:
        libc.prctl(PR_SET_PDEATHSIG, 0)
        os.setsid()  # no controlling terminal of the host's
        if os.read(to_child_r, 1) != b"G":
            os._exit(1)
        run.state.writable = False
        run.root = str(ct.root)
        plugins.run_each("vz_setup_child", ct=ct, run=run)
        if not plugins.first_result("vz_switch_root", ct=ct, run=run):
            raise VzError(f"CT {ct.ctid}: no plugin switched the root (vz_switch_root); "
                          "is the isolation plugin active?")
        plugins.run_each("vz_finalize_child", ct=ct, run=run)
        exec_init()
    except BaseException as exc:
        _report(from_child_w, exc)


def exec_init() -> NoReturn:
    """Give init /dev/null as stdio (the CT's own), close host descriptors, exec."""
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    prepare_exec()
    try:
        os.execve(INIT_PATH, [INIT_PATH], INIT_ENV)
    except OSError as exc:
        raise BadTemplate(f"cannot run {INIT_PATH} in the CT: {exc.strerror}") from exc
