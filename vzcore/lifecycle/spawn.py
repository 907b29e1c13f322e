"""Creating a CT's init: the fork, namespace and sync-pipe protocol of ``vzctl start``.

This module calls no hook: :func:`vzcore.lifecycle.start.start` drives the phases of
:class:`InitSpawner` and hands it the steps init runs.  Four processes take part:

``vzctl`` (host)
    forks the *holder* and the *parent* (:meth:`InitSpawner.fork`), then drives them
    over pipes.
*holder*
    unshares the namespaces the CT's root must own: user, network, UTS, IPC.  It says
    ``U`` and stays until init has joined them (:meth:`InitSpawner.namespaces_ready`
    returns its PID, which the host setup configures).
*parent*
    the host's root in a new mount and PID namespace (owned by the host's user
    namespace).  vzctl moves it into the CT's cgroups (in a background thread: the first
    cgroup migration after a quiet spell waits for an RCU grace period, which then
    overlaps ``vz_pre_start``), releases it with ``R`` (:meth:`InitSpawner.fork_init`);
    it forks *init*, reports init's host PID with ``P`` and exits.
*init*
    PID 1 of the new PID namespace.  It joins the holder's network, UTS and IPC
    namespaces (``J``) and waits for ``G`` (:meth:`InitSpawner.release`), which vzctl
    sends only after it recorded init's PID and start time in the state file, so that a
    vzctl killed at any moment leaves either no CT process or a recorded one.  Then it
    runs the start's steps (still as the host's root; they call :meth:`OwnNamespaces.enter`
    once the file system view is built), puts stdio on the CT's /dev/null, closes every
    other descriptor and execs ``/sbin/init``.

Errors come back as ``E`` with a JSON message; a successful exec closes the last
(close-on-exec) pipe end, which vzctl reads as success (:meth:`InitSpawner.wait_exec`).
The holder and the parent die with vzctl (``PR_SET_PDEATHSIG``); init, until released,
by reading end-of-file.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn

from vzcore.container import Container
from vzcore.errors import BadTemplate, PluginError, VzError, describe
from vzcore.lifecycle.execenv import detach, prepare_exec
from vzcore.lifecycle.forklimit import ForkLimit
from vzcore.linux import dumpable, libc, namespaces
from vzcore.linux.cgroups import CgroupSet
from vzcore.linux.procfs import ProcessId

PR_SET_PDEATHSIG = 1
INIT_PATH = "/sbin/init"
INIT_ENV = {
    "container": "vzcore",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/",
    "TERM": "linux",
}

INIT_ENV_OPTION = "init_env"
"""The ``run.options`` key under which the hooks in init (``vz_finalize_child``) add
variables to init's environment (systemd's container interface: ``container_uuid``,
``NOTIFY_SOCKET``)."""

PARENT_OPTION = "parent_pid"
"""The ``run.options`` key holding the PID of the start's parent process, which made the
CT's PARENT_NAMESPACES (``vz_setup_host`` sets its time namespace's offsets there)."""

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


class OwnNamespaces:
    """The namespaces init enters between building the CT's file system view and its last
    settings (handed to the start's in-CT steps, which decide when)."""

    def __init__(self, user: list[tuple[str, int]], cgroup: bool) -> None:
        self._user = user
        self._cgroup = cgroup

    def enter(self) -> None:
        """Enter the CT's user namespace and a new mount namespace owned by it (the kernel
        locks every mount made so far: the CT's root cannot unmount a mask or make a
        read-only mount writable), then a new cgroup namespace rooted at the CT's groups."""
        if self._user:
            namespaces.enter(self._user)
            namespaces.unshare(["mnt"])
        if self._cgroup:
            namespaces.unshare(["cgroup"])


InitSteps = Callable[[OwnNamespaces], Mapping[str, str]]
"""What init runs once released, before it execs ``/sbin/init``; it returns variables for
init's environment and raises on failure."""


class InitSpawner:
    """The vzctl side of the protocol, one call per phase, in this order: :meth:`fork`,
    :meth:`namespaces_ready`, :meth:`fork_init`, :meth:`release`, :meth:`wait_exec`
    (:meth:`abort` on failure, :meth:`close` always)."""

    def __init__(self, ct: Container, names: Iterable[str], cgroups: CgroupSet,
                 steps: InitSteps) -> None:
        self.ct = ct
        self.names = set(names)
        unknown = self.names - set(HOLDER_NAMESPACES) - set(PARENT_NAMESPACES) - {"cgroup"}
        if unknown:
            raise VzError(f"CT {ct.ctid}: unknown namespaces requested: {sorted(unknown)}")
        self.cgroups = cgroups
        self.steps = steps
        self.holder_pid = 0
        self.parent_pid = 0
        self.init: ProcessId | None = None
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
            _parent(self.ct, self.cgroups, self.names, vzctl_pid, self.holder_pid, fds, self.steps)
        for end in ("to_holder_r", "to_init_r", "from_w"):
            os.close(fds.pop(end))
        self._attacher = threading.Thread(target=self._attach, name="vz-cgroup-attach")
        self._attacher.start()

    def _attach(self) -> None:
        try:
            self.cgroups.attach(self.parent_pid)
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

    def namespaces_ready(self) -> int:
        """Wait until the holder made its namespaces and the parent is in the CT's cgroups;
        return the holder's PID (the one ``vz_setup_host`` configures)."""
        self._receive("unsharing namespaces", b"U")
        self._join_attacher()
        return self.holder_pid

    def fork_init(self) -> ProcessId:
        """Let the parent fork init, which joins the holder's namespaces and waits; return
        init's identity (the holder and the parent are gone then)."""
        try:
            os.write(self._fds["to_init_w"], b"R")
        except BrokenPipeError:  # the parent is gone: its own report says why
            raise _unexpected(_receive(self._fds["from_r"]), "forking init") from None
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
        self.init = ProcessId.of(init_pid)
        if self.init is None:
            raise VzError(f"CT {self.ct.ctid}: init process {init_pid} vanished before it was set up")
        return self.init

    def release(self) -> None:
        """Let init run its steps and exec; only once its identity is on record."""
        try:
            os.write(self._fds["to_init_w"], b"G")
        except BrokenPipeError:
            pass  # init is gone: wait_exec raises what it reported (not a bare EPIPE)
        os.close(self._fds.pop("to_init_w"))

    def wait_exec(self) -> None:
        """Wait until init exec'd; raise its steps' error (naming the plugin) otherwise."""
        if init_failure := _receive_final(self._fds["from_r"]):
            raise init_failure
        if self.init is None or not self.init.is_alive():
            raise BadTemplate(f"CT {self.ct.ctid}: {INIT_PATH} exited right after it started; "
                              "check the CT's init configuration")

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


def _parent(ct: Container, cgroups: CgroupSet, names: set[str], vzctl_pid: int,
            holder_pid: int, fds: dict[str, int], steps: InitSteps) -> NoReturn:
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
            raise ForkLimit.read(ct.ctid, cgroups).error("the CT's init") from None
        if init_pid == 0:
            _init(names, holder_pid, fds, steps)
        _send(fds["from_w"], b"P", struct.pack("=I", init_pid))
        os._exit(0)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def _init(names: set[str], holder_pid: int, fds: dict[str, int], steps: InitSteps) -> NoReturn:
    """The CT's init before it execs; never returns."""
    try:
        libc.prctl(PR_SET_PDEATHSIG, 0)
        os.setsid()  # a session of its own, as every init has
        held = [n for n in ("net", "uts", "ipc") if n in names]
        namespaces.enter(namespaces.open_namespaces(holder_pid, held))
        user = namespaces.open_namespaces(holder_pid, ["user"]) if "user" in names else []
        _send(fds["from_w"], b"J")
        if os.read(fds["to_init_r"], 1) != b"G":
            os._exit(1)
        extra = steps(OwnNamespaces(user, "cgroup" in names))
        dumpable.forbid()  # the credential changes in the steps may have reset it
        exec_init(extra)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def exec_init(extra: Mapping[str, str] | None = None) -> NoReturn:
    """Give init the CT's /dev/console as stdio (its console pty, see
    :mod:`vzcore.lifecycle.console`; not as controlling terminal: init takes one if it
    wants), close host descriptors, exec it with :data:`INIT_ENV` and ``extra``."""
    try:
        console = os.open("/dev/console", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        console = os.open("/dev/null", os.O_RDWR)  # the CT's own
    for fd in (0, 1, 2):
        os.dup2(console, fd)
    if console > 2:
        os.close(console)
    prepare_exec()
    try:
        os.execve(INIT_PATH, [INIT_PATH], {**(extra or {}), **INIT_ENV})
    except OSError as exc:
        raise BadTemplate(f"cannot run {INIT_PATH} in the CT: {exc.strerror}") from exc
