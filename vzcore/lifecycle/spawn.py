"""Creating a CT's init: the fork, namespace and sync-pipe protocol of ``vzctl start``.

Four processes take part:

``vzctl`` (host)
    forks the *holder* and the *parent*, then drives them over pipes.
*holder*
    unshares the namespaces the CT's root must own: user, network, UTS, IPC.  It says
    ``U`` and stays until init has joined them.  vzctl runs ``vz_setup_host(pid)`` with
    its PID (uid maps, network devices into its network namespace).
*parent*
    the host's root in a new mount and PID namespace (owned by the host's user
    namespace).  vzctl moves it into the CT's cgroups (in a background thread: the first
    cgroup migration after a quiet spell waits for an RCU grace period, which then
    overlaps ``vz_pre_start``), releases it with ``R``; it forks *init*, reports init's
    host PID with ``P`` and exits.
*init*
    PID 1 of the new PID namespace.  It joins the holder's network, UTS and IPC
    namespaces (``J``) and waits for ``G``, which vzctl sends only after it recorded
    init's PID and start time in the state file, so that a vzctl killed at any moment
    leaves either no CT process or a recorded one.  Then, still as the host's root, it
    runs ``vz_setup_child`` (mounts) and ``vz_switch_root``; then enters the CT's user
    namespace and a new mount namespace owned by it (the kernel locks every mount made
    so far: the CT's root cannot unmount a mask or make a read-only mount writable), and
    a new cgroup namespace (rooted at the CT's own groups); then ``vz_finalize_child``,
    stdio on the CT's /dev/null, every other descriptor closed, exec ``/sbin/init``.

Errors come back as ``E`` with a JSON message; a successful exec closes the last
(close-on-exec) pipe end, which vzctl reads as success.  The holder and the parent die
with vzctl (``PR_SET_PDEATHSIG``); init, until released, by reading end-of-file.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from typing import NoReturn

from vzcore.container import Container
from vzcore.errors import BadTemplate, PluginError, VzError, describe
from vzcore.faults import checkpoint
from vzcore.lifecycle.execenv import detach, prepare_exec
from vzcore.lifecycle.forklimit import ForkLimit
from vzcore.linux import dumpable, libc, namespaces
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
        payload = {"plugin": exc.plugin, "hook": exc.hook, "message": exc.detail,
                   "exit_code": exc.exit_code}
    elif isinstance(exc, VzError):
        payload = {"message": exc.message, "exit_code": exc.exit_code}
    else:
        payload = {"message": describe(exc)}
    if os.environ.get("VZ_DEBUG_CHILD"):
        import traceback

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


HOLDER_NAMESPACES = ("user", "net", "uts", "ipc")
"""Made by the holder: owned by the CT's user namespace, so its root manages them."""
PARENT_NAMESPACES = ("mnt", "pid", "time")
"""Made by the parent as the host's root: the file system view is built with the host's
privileges and locked when init enters the CT's user namespace."""


class InitSpawner:
    """The vzctl side of the protocol: :meth:`fork`, then :meth:`finish` (or :meth:`abort`)."""

    def __init__(self, ct: Container, run: Run, names: Iterable[str],
                 attach: Callable[[int], None]) -> None:
        self.ct = ct
        self.run = run
        self.names = set(names)
        unknown = self.names - set(HOLDER_NAMESPACES) - set(PARENT_NAMESPACES) - {"cgroup"}
        if unknown:
            raise VzError(f"CT {ct.ctid}: unknown namespaces requested: {sorted(unknown)}")
        self.attach = attach
        self.holder_pid = 0
        self.parent_pid = 0
        self._attach_error: BaseException | None = None
        self._attacher: threading.Thread | None = None
        self._fds: dict[str, int] = {}

    def fork(self) -> None:
        """Fork the holder and the parent; start attaching the parent to the cgroups."""
        fds = self._fds
        fds["to_holder_r"], fds["to_holder_w"] = os.pipe2(os.O_CLOEXEC)
        fds["to_init_r"], fds["to_init_w"] = os.pipe2(os.O_CLOEXEC)
        fds["from_r"], fds["from_w"] = os.pipe2(os.O_CLOEXEC)
        vzctl_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        self.holder_pid = os.fork()
        if self.holder_pid == 0:
            _holder(self.names, vzctl_pid, fds)
        self.parent_pid = os.fork()
        if self.parent_pid == 0:
            _parent(self.ct, self.run, self.names, vzctl_pid, self.holder_pid, fds)
        for end in ("to_holder_r", "to_init_r", "from_w"):
            os.close(fds.pop(end))
        self._attacher = threading.Thread(target=self._attach, name="vz-cgroup-attach")
        self._attacher.start()

    def _attach(self) -> None:
        try:
            self.attach(self.parent_pid)
        except BaseException as exc:
            self._attach_error = exc

    def _join_attacher(self) -> None:
        if self._attacher is not None:
            self._attacher.join()
            self._attacher = None
        if self._attach_error is not None:
            raise self._attach_error

    def _receive(self, step: str, *kinds: bytes) -> tuple[bytes, bytes]:
        message = _receive(self._fds["from_r"])
        if message is None or message[0] not in kinds:
            raise _unexpected(message, step)
        return message

    def finish(self, record_init: Callable[[ProcessId], None]) -> ProcessId:
        """Host setup, init's fork and exec; ``record_init`` writes init's identity to the
        state file before init may run."""
        ct, run = self.ct, self.run
        self._receive("unsharing namespaces", b"U")
        self._join_attacher()
        checkpoint("start:attached")
        run.plugins.run_each("vz_setup_host", ct=ct, run=run, pid=self.holder_pid)
        checkpoint("start:host-setup-done")
        os.write(self._fds["to_init_w"], b"R")
        init_pid, joined = 0, False
        while not (init_pid and joined):
            kind, payload = self._receive("forking init", b"P", b"J")
            if kind == b"P":
                (init_pid,) = struct.unpack("=I", payload)
            else:
                joined = True
        _reap(self.parent_pid)
        self.parent_pid = 0
        os.close(self._fds.pop("to_holder_w"))  # init holds the namespaces now
        _reap(self.holder_pid)
        self.holder_pid = 0
        init = ProcessId.of(init_pid)
        if init is None:
            raise VzError(f"CT {ct.ctid}: init process {init_pid} vanished before it was set up")
        record_init(init)
        os.write(self._fds["to_init_w"], b"G")
        checkpoint("start:released")
        os.close(self._fds.pop("to_init_w"))
        if init_failure := _receive_final(self._fds["from_r"]):
            raise init_failure
        if not init.is_alive():
            raise BadTemplate(f"CT {ct.ctid}: {INIT_PATH} exited right after it started; "
                              "check the CT's init configuration")
        return init

    def abort(self) -> None:
        """Kill the holder and the parent (init, if forked, dies with the CT's cgroups)."""
        for pid in (self.holder_pid, self.parent_pid):
            if pid:
                _kill_and_reap(pid)
        self.holder_pid = self.parent_pid = 0
        try:
            self._join_attacher()
        except BaseException:
            pass
        self.close()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


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


def _die_with(vzctl_pid: int) -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != vzctl_pid:  # vzctl died before the prctl
        os._exit(1)


def _keep_only(fds: dict[str, int], *keep: str) -> None:
    """In a child: close the pipe ends it does not use (held ends would hide end-of-file)."""
    for name in [n for n in fds if n not in keep]:
        os.close(fds.pop(name))


def _holder(names: set[str], vzctl_pid: int, fds: dict[str, int]) -> NoReturn:
    """Unshare the namespaces the CT's root must own; keep them until init joined."""
    try:
        _keep_only(fds, "to_holder_r", "from_w")
        detach()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with(vzctl_pid)
        libc.unshare(namespaces.flags_of(names & set(HOLDER_NAMESPACES)))
        _send(fds["from_w"], b"U")
        while os.read(fds["to_holder_r"], 1):
            pass
        os._exit(0)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def _parent(ct: Container, run: Run, names: set[str], vzctl_pid: int, holder_pid: int,
            fds: dict[str, int]) -> NoReturn:
    """As the host's root: a new mount and PID namespace; fork init once released."""
    try:
        _keep_only(fds, "to_init_r", "from_w")
        detach()  # init is forked from here: no host terminal, descriptor or session
        dumpable.forbid()  # until init execs, the CT's processes must not reach it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with(vzctl_pid)
        libc.unshare(namespaces.flags_of(names & set(PARENT_NAMESPACES)))
        if os.read(fds["to_init_r"], 1) != b"R":
            os._exit(1)
        try:
            init_pid = os.fork()
        except BlockingIOError:
            raise ForkLimit.read(ct.ctid, run.cgroups).error("the CT's init") from None
        if init_pid == 0:
            _init(ct, run, names, holder_pid, fds)
        _send(fds["from_w"], b"P", struct.pack("=I", init_pid))
        os._exit(0)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def _init(ct: Container, run: Run, names: set[str], holder_pid: int,
          fds: dict[str, int]) -> NoReturn:
    """The CT's init before it execs; never returns."""
    plugins = run.plugins
    try:
        libc.prctl(PR_SET_PDEATHSIG, 0)
        os.setsid()  # a session of its own, as every init has
        held = [n for n in ("net", "uts", "ipc") if n in names]
        namespaces.enter(namespaces.open_namespaces(holder_pid, held))
        user = namespaces.open_namespaces(holder_pid, ["user"]) if "user" in names else []
        _send(fds["from_w"], b"J")
        if os.read(fds["to_init_r"], 1) != b"G":
            os._exit(1)
        run.state.writable = False
        run.root = str(ct.root)
        plugins.run_each("vz_setup_child", ct=ct, run=run)
        if not plugins.first_result("vz_switch_root", ct=ct, run=run):
            raise VzError(f"CT {ct.ctid}: no plugin switched the root (vz_switch_root); "
                          "is the isolation plugin active?")
        if user:
            namespaces.enter(user)
            namespaces.unshare(["mnt"])  # a copy owned by the CT's user namespace: locked
        if "cgroup" in names:
            namespaces.unshare(["cgroup"])
        plugins.run_each("vz_finalize_child", ct=ct, run=run)
        dumpable.forbid()  # the credential changes above may have reset it
        exec_init()
    except BaseException as exc:
        _report(fds["from_w"], exc)


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
