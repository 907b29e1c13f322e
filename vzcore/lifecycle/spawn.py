"""Creating a CT's init: the fork, namespace and sync-pipe protocol of ``vzctl start``.

This module calls no hook: :func:`vzcore.lifecycle.start.start` drives the phases of
:class:`InitSpawner` and hands it the steps the CT's first processes run.  Five processes
take part:

``vzctl`` (host)
    forks the *holder* and the *builder's parent* (:meth:`InitSpawner.fork`), then drives
    them over pipes.
*holder*
    as the host's root, joins the existing namespaces the start names by path
    (:data:`JOIN_OPTION`, an OCI spec's; made by someone else, they stay owned by their
    user namespace), unshares a mount and a time namespace (owned by the host's user
    namespace: the file system view is built in it with the host's privileges, and locked
    when init leaves it), then the namespaces the CT's root must own: user, network, UTS,
    IPC and PID (but those it joined, and those the start shares with its caller,
    :data:`SHARE_OPTION`).  The PID namespace belongs to the CT's user namespace so that reboot(2)
    inside ends the CT's init with a wait status that tells reboot from power-off (see
    docs/system-cts.md), as in LXC.  It says ``U`` and waits.  Only then does vzctl move
    it into the CT's cgroups (in a background thread: the first cgroup migration after a
    quiet spell waits for an RCU grace period, which then overlaps ``vz_pre_start``):
    ``vz_pre_start`` sets up those groups meanwhile, in steps (the v1 devices controller
    denies every device before it allows the CT's), so a process in them must not be
    doing anything yet (a holder attached earlier, still opening ``/dev/null``, failed
    about once per 1,000 starts of a boot-all).  Once ``vz_setup_host`` configured it
    (the user namespace's maps) vzctl releases it with ``R``
    (:meth:`InitSpawner.fork_init`); it forks *init*, reports init's host PID with ``P``
    and exits.
*init*
    PID 1 of the new PID namespace, in all the holder's namespaces (as the CT's root when
    the CT has a user namespace).  It waits for ``G`` (:meth:`InitSpawner.release`),
    which vzctl sends only after it recorded init's PID and start time in the state file
    (so that a vzctl killed at any moment leaves either no CT process or a recorded one)
    and after the *builder* built its file system view.  Then it runs the start's last
    steps (:data:`FinishSteps`: a mount namespace of its own, which locks every mount,
    a cgroup namespace, the hooks' final settings), puts stdio on the CT's console,
    closes every other descriptor and execs ``/sbin/init``.
*builder's parent* and *builder*
    the parent, the host's root, waits for ``B`` with init's PID, joins init's mount,
    PID, network, UTS and IPC namespaces (not its user namespace) and forks the builder:
    a host's root process in the CT's PID namespace, which runs :data:`BuildSteps` (the
    hooks that build the CT's file system view, then the root switch, which moves init's
    root too), sends ``D`` with the options the hooks set for init, and exits.

vzctl has the console daemon fork the holder, so that the daemon is init's parent and
sees a reboot inside; with :data:`LOCAL_HOLDER_OPTION` (an OCI runtime's start) vzctl
forks it itself, and init inherits every descriptor of the starting process (``fork``
copies close-on-exec ones too; the holder replaces only 0-2): what the runtime opened for
the container's process before the start, named in ``run.options``.

Errors come back as ``E`` with a JSON message; a successful exec closes the last
(close-on-exec) pipe end, which vzctl reads as success (:meth:`InitSpawner.wait_exec`).
The holder and the parent die with vzctl (``PR_SET_PDEATHSIG``), the builder with the
parent; init, until released, by reading end-of-file.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from vzcore.container import Container
from vzcore.errors import BadTemplate, PluginError, VzError, describe
from vzcore.faults import checkpoint
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

LOCAL_HOLDER_OPTION = "local_holder"
"""The ``run.options`` key (true) with which a start's caller says the CT's init must
inherit its descriptors (an OCI runtime: the engine's stdio, ``--preserve-fds``, the exec
fifo): vzctl forks the holder itself instead of the console daemon.  Init's parent is then
whoever reaps the starting process's orphans (conmon, containerd's shim: an OCI
container's process is not rebooted from inside), and a reboot inside stops the CT."""
JOIN_OPTION = "join_namespaces"
"""The ``run.options`` key of ``{name: path}``: existing namespaces (of
:data:`JOINABLE_NAMESPACES`) the holder enters, as the host's root, instead of making
them, so that init and the builder are in them (an OCI spec's namespaces with a path).
Only with :data:`LOCAL_HOLDER_OPTION`: the console daemon's holder joins none."""
JOINABLE_NAMESPACES = ("net", "uts", "ipc", "mnt", "pid", "cgroup")
SHARE_OPTION = "share_namespaces"
"""The ``run.options`` key of a list of namespace names the CT does not get of its own:
init stays in the starting process's (an OCI spec without them, ``podman --network=host``,
``--pid=host``).  Only with :data:`LOCAL_HOLDER_OPTION`."""
ROOT_OPTION = "root_in_namespace"
"""The ``run.options`` key of the CT root's path as a joined mount namespace shows it (the
builder builds the view there; the CT's own mount of it is in the host's namespace)."""
CHROOT_OPTION = "chroot_root"
"""Set by the hook that switched the builder's root with ``chroot`` (a mount namespace
not the CT's own, where ``pivot_root`` would move every process of it): the path init
chroots to as well, before its last steps."""


def own_namespace(options: Mapping[str, Any], name: str) -> bool:
    """Whether the start of these ``run.options`` makes namespace ``name`` of its own
    (neither joins an existing one nor shares the starting process's)."""
    return name not in (options.get(JOIN_OPTION) or {}) \
        and name not in (options.get(SHARE_OPTION) or ())

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


HOST_NAMESPACES = ("mnt", "time")
"""Made by the holder first, as the host's root: the file system view is built in this
mount namespace with the host's privileges (the builder joins it) and locked when init
unshares its own; the time namespace's offsets are set from the host."""
HOLDER_NAMESPACES = ("user", "net", "uts", "ipc", "pid")
"""Made by the holder next: owned by the CT's user namespace, so its root manages them
(reboot(2) needs ``CAP_SYS_BOOT`` over the PID namespace's owner)."""
BUILDER_JOINS = ("pid", "net", "uts", "ipc", "mnt")
"""The namespaces of init the builder enters (the PID namespace for its children; the
network namespace for sysfs), as the host's root."""


class OwnNamespaces:
    """The namespaces init makes once its file system view is built, before its last
    settings (handed to the start's finishing steps, which decide when)."""

    def __init__(self, user: bool, cgroup: bool) -> None:
        self._user = user
        self._cgroup = cgroup

    def enter(self) -> None:
        """In a user namespace: a new mount namespace owned by it (the kernel locks every
        mount made so far: the CT's root cannot unmount a mask or make a read-only mount
        writable); then a new cgroup namespace rooted at the CT's groups."""
        if self._user:
            namespaces.unshare(["mnt"])
        if self._cgroup:
            namespaces.unshare(["cgroup"])


BuildSteps = Callable[[], Mapping[str, Any]]
"""What the builder runs (the host's root in init's mount and PID namespaces): build the
CT's file system view and switch init's root; it returns ``run.options`` as the hooks left
them (JSON-serialisable), which init gets, and raises on failure."""
FinishSteps = Callable[[OwnNamespaces, Mapping[str, Any]], Mapping[str, str]]
"""What init runs once released, with the builder's options, before it execs
``/sbin/init``; it returns variables for init's environment and raises on failure."""


class InitSpawner:
    """The vzctl side of the protocol, one call per phase, in this order: :meth:`fork`,
    :meth:`namespaces_ready`, :meth:`fork_init`, :meth:`release`, :meth:`wait_exec`
    (:meth:`abort` on failure, :meth:`close` always)."""

    def __init__(self, ct: Container, names: Iterable[str], cgroups: CgroupSet,
                 build: BuildSteps, finish: FinishSteps,
                 fork_holder: Callable[[dict[str, int]], int | None] | None = None,
                 join: Mapping[str, str] | None = None, share: Iterable[str] = ()) -> None:
        self.ct = ct
        self.names = set(names)
        unknown = self.names - set(HOLDER_NAMESPACES) - set(HOST_NAMESPACES) - {"cgroup"}
        if unknown:
            raise VzError(f"CT {ct.ctid}: unknown namespaces requested: {sorted(unknown)}")
        self.join = dict(join or {})
        if set(self.join) - set(JOINABLE_NAMESPACES):
            raise VzError(f"CT {ct.ctid}: only the {', '.join(JOINABLE_NAMESPACES)} namespaces "
                          f"can be joined, not {sorted(set(self.join) - set(JOINABLE_NAMESPACES))}")
        if (self.join or share) and fork_holder is not None:
            raise VzError(f"CT {ct.ctid}: namespaces to join or share need the holder forked "
                          f"by vzctl ({LOCAL_HOLDER_OPTION})")
        # what the holder and init make: neither joined nor shared with the starter
        self.names -= set(share) | set(self.join)
        self.cgroups = cgroups
        self.build = build
        self.finish = finish
        self.fork_holder = fork_holder
        self.holder_pid = 0
        self.parent_pid = 0
        self.init: ProcessId | None = None
        self._attach_error: BaseException | None = None
        self._attacher: threading.Thread | None = None
        self._fds: dict[str, int] = {}

    def fork(self) -> None:
        """Fork the builder's parent; have ``fork_holder`` (the console daemon, which so
        becomes init's parent) fork the holder, else fork it here; start a thread that
        attaches the holder to the cgroups (init inherits them) once it waits."""
        fds = self._fds
        for name in ("to_holder", "to_parent", "to_init", "from"):
            fds[f"{name}_r"], fds[f"{name}_w"] = os.pipe2(os.O_CLOEXEC)
        vzctl_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        self.parent_pid = os.fork()
        if self.parent_pid == 0:
            _parent(vzctl_pid, fds, self.build)
        ends = {end: fds[end] for end in HOLDER_ENDS}
        holder = self.fork_holder(ends) if self.fork_holder is not None else None
        if holder is None:
            holder = os.fork()
            if holder == 0:
                _holder(self.ct, self.names, fds, self.finish, vzctl_pid, self.cgroups,
                        self.join)
        self.holder_pid = holder
        for end in ("to_holder_r", "to_parent_r", "to_init_r", "from_w"):
            os.close(fds.pop(end))
        self._attacher = threading.Thread(target=self._attach, name="vz-cgroup-attach")
        self._attacher.start()

    def _attach(self) -> None:
        """In a thread, while vzctl runs ``vz_pre_start``: wait for the holder's ``U`` (the
        first message; an error of the holder or the builder's parent instead ends the
        start), then attach it.  Not before: the hooks may set the groups in steps (the v1
        devices controller denies all devices first), which a holder still at work (its
        :func:`~vzcore.lifecycle.execenv.detach` opens ``/dev/null``) must not meet."""
        try:
            self._receive("unsharing namespaces", b"U")
            checkpoint("spawn:holder-waits")
            self.cgroups.attach(self.holder_pid)
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
        """Wait until the holder made its namespaces and is in the CT's cgroups; return
        its PID (the one ``vz_setup_host`` configures)."""
        self._join_attacher()  # it read the holder's U
        return self.holder_pid

    def fork_init(self) -> ProcessId:
        """Let the holder fork init, which waits; return init's identity (the holder is
        gone then)."""
        try:
            os.write(self._fds["to_holder_w"], b"R")
        except BrokenPipeError:  # the holder is gone: its own report says why
            raise _unexpected(_receive(self._fds["from_r"]), "forking init") from None
        _kind, payload = self._receive("forking init", b"P")
        (init_pid,) = struct.unpack("=I", payload)
        os.close(self._fds.pop("to_holder_w"))
        _reap(self.holder_pid)
        self.holder_pid = 0
        self.init = ProcessId.of(init_pid)
        if self.init is None:
            raise VzError(f"CT {self.ct.ctid}: init process {init_pid} vanished before it was set up")
        return self.init

    def release(self) -> None:
        """Have the builder build init's file system view, then let init finish and exec;
        only once its identity is on record."""
        assert self.init is not None
        try:
            _send(self._fds["to_parent_w"], b"B", struct.pack("=I", self.init.pid))
        except BrokenPipeError:  # the builder's parent is gone: its own report says why
            raise _unexpected(_receive(self._fds["from_r"]),
                              "building the CT's file system view") from None
        os.close(self._fds.pop("to_parent_w"))
        _kind, options = self._receive("building the CT's file system view", b"D")
        _reap(self.parent_pid)
        self.parent_pid = 0
        try:
            _send(self._fds["to_init_w"], b"G", options)
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
        """Kill the holder and the builder's parent (init, if forked, dies with the CT's
        cgroups; the builder with its parent)."""
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


def _die_with(parent_pid: int) -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the prctl
        os._exit(1)


def _keep_only(fds: dict[str, int], *keep: str) -> None:
    """In a child: close the pipe ends it does not use (held ends would hide end-of-file)."""
    for name in [n for n in fds if n not in keep]:
        os.close(fds.pop(name))


HOLDER_ENDS = ("to_holder_r", "to_init_r", "from_w")
"""The pipe ends the holder uses (handed to the console daemon with a ``spawn`` request)."""


def holder_in_daemon(ctid: int, names: set[str], fds: dict[str, int]) -> NoReturn:
    """The holder as a child of the console daemon (:mod:`vzcore.lifecycle.consoled`),
    which forked it on vzctl's request with :data:`HOLDER_ENDS`: init, forked here, is
    reparented to the daemon (a child subreaper) when the holder exits, so the daemon
    reads init's wait status.  The CT and its plugins are loaded again from the
    installation's files (the daemon's environment names it).  The daemon's descriptors
    stay open here, as vzctl's do in the processes it forks, what plugins opened
    included; init marks every descriptor above 2 close-on-exec before it execs, so none
    reaches the CT's programs."""
    try:
        signal.set_wakeup_fd(-1)  # the daemon's SIGCHLD wake-up is not ours
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        from vzcore.engine import Engine
        from vzcore.lifecycle.start import finish_steps
        from vzcore.paths import Paths
        from vzcore.runtime import Run, State

        engine = Engine(Paths.from_environment())
        ct = engine.container(ctid)
        engine.plugins.import_child_modules()  # before the root switch hides the host's files
        run = Run(ct, State(engine.paths.state_file(ctid), ctid), engine.plugins)
        _holder(ct, names, fds, finish_steps(ct, run), None, None)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def _holder(ct: Container, names: set[str], fds: dict[str, int], finish: FinishSteps,
            vzctl_pid: int | None, cgroups: CgroupSet | None,
            join: Mapping[str, str] | None = None) -> NoReturn:
    """Join the namespaces ``join`` names, unshare the CT's others; fork init into them
    once released (``vzctl_pid``: the holder is vzctl's child and dies with it; else
    vzctl's end of the pipe tells).  Descriptors other than the pipes' and 0-2 stay open:
    init inherits them."""
    try:
        checkpoint("spawn:holder-forked")
        _keep_only(fds, *HOLDER_ENDS)
        detach()  # init is forked from here: no host terminal, descriptor or session
        dumpable.forbid()  # until init execs, the CT's processes must not reach it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if vzctl_pid is not None:
            _die_with(vzctl_pid)
        join = join or {}
        # as the host's root (the owner may be the host's user namespace), the mount
        # namespace last (it resets the root and working directory); a joined PID
        # namespace is the one init is forked into
        for name in sorted(join, key=namespaces.JOIN_ORDER.index):
            _join(name, join[name])
        # Two calls: with CLONE_NEWUSER in the same call, the kernel would make the
        # mount namespace the CT's, and the view could no longer be built as the host's root.
        # ``names`` lacks the joined and shared ones (InitSpawner).
        libc.unshare(namespaces.flags_of(names & set(HOST_NAMESPACES)))
        libc.unshare(namespaces.flags_of(names & set(HOLDER_NAMESPACES)))
        _send(fds["from_w"], b"U")
        if os.read(fds["to_holder_r"], 1) != b"R":
            os._exit(1)
        try:
            init_pid = os.fork()
        except BlockingIOError:
            if cgroups is None:
                from vzcore.runtime import State

                state = State.load(ct.paths.state_file(ct.ctid), ct.ctid)
                cgroups = state.cgroups if state is not None else None
            if cgroups is None:
                raise
            raise ForkLimit.read(ct.ctid, cgroups).error("the CT's init") from None
        if init_pid == 0:
            _init(names, fds, finish)
        _send(fds["from_w"], b"P", struct.pack("=I", init_pid))
        os._exit(0)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def _join(name: str, path: str) -> None:
    """setns() into the namespace file ``path`` (``/proc/PID/ns/NAME`` or a bind of one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise VzError(f"cannot open the {name} namespace {path}: {exc.strerror}") from None
    try:
        libc.setns(fd, namespaces.FLAGS[name])
    finally:
        os.close(fd)


def _parent(vzctl_pid: int, fds: dict[str, int], build: BuildSteps) -> NoReturn:
    """As the host's root: join init's namespaces (not its user namespace) once told its
    PID and fork the builder there."""
    try:
        _keep_only(fds, "to_parent_r", "from_w")
        detach()
        dumpable.forbid()  # it enters the CT's namespaces as the host's root
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _die_with(vzctl_pid)
        message = _receive(fds["to_parent_r"])
        if message is None or message[0] != b"B":
            os._exit(1)
        (init_pid,) = struct.unpack("=I", message[1])
        root = os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        namespaces.enter(namespaces.open_namespaces(init_pid, BUILDER_JOINS))
        # setns() put the root at the mount namespace's; take init's own instead, so
        # that the root switch (pivot_root) moves init's root along with the builder's.
        os.fchdir(root)
        os.chroot(".")
        os.close(root)
        builder = os.fork()
        if builder == 0:
            _builder(os.getppid(), fds, build)
        _pid, status = os.waitpid(builder, 0)
        os._exit(0 if status == 0 else 1)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def _builder(parent_pid: int, fds: dict[str, int], build: BuildSteps) -> NoReturn:
    """The host's root in init's mount and PID namespaces: build the view, say ``D``."""
    try:
        _die_with(parent_pid)
        options = build()
        _send(fds["from_w"], b"D", json.dumps(options).encode())
        os._exit(0)
    except BaseException as exc:
        _report(fds["from_w"], exc)


def _init(names: set[str], fds: dict[str, int], finish: FinishSteps) -> NoReturn:
    """The CT's init before it execs; never returns."""
    try:
        _keep_only(fds, "to_init_r", "from_w")
        libc.prctl(PR_SET_PDEATHSIG, 0)
        os.setsid()  # a session of its own, as every init has
        message = _receive(fds["to_init_r"])
        if message is None or message[0] != b"G":
            os._exit(1)
        os.chdir("/")  # the builder's root switch moved init's root; the directory follows
        options = json.loads(message[1])
        extra = finish(OwnNamespaces("user" in names, "cgroup" in names), options)
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
