"""The OCI runtime verbs on vzcore's engine: ``create`` is ``vzctl start`` of a CT made
from the bundle (its init stops on the exec fifo before the program), ``start`` opens the
fifo, ``kill`` signals init, ``delete`` is ``vzctl stop`` plus removing the CT.

Every verb on one container holds the engine's per-CT lock; ``create`` also holds the
store's ID lock while it claims an ID and a CT ID.  What ``create`` makes is recorded
before it is made (the CT's config, then ``oci.json``, then the engine's own state file),
so ``delete --force`` cleans up after a create killed at any point.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import select
import signal
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vzcore.conffile import ConfigFile, atomic_write
from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import InvalidValue, NotRunning, VzError
from vzcore.faults import checkpoint
from vzcore.idmap import format_ranges
from vzcore.lifecycle.spawn import JOIN_OPTION, LOCAL_HOLDER_OPTION, ROOT_OPTION, SHARE_OPTION
from vzcore.linux import mounts
from vzcore.linux.procfs import ProcessId, wait_exit
from vzcore.oci import hooks, mountns, spec
from vzcore.oci.plugin import (
    BUNDLE_KEY,
    CONFIG_KEY,
    CONSOLE_OPTION,
    FIFO_OPTION,
    HOOKS_OPTION,
    ID_KEY,
    JOINED_MNT_KEY,
    LAYOUT,
    PRESERVE_OPTION,
    STDIO_OPTION,
)
from vzcore.oci.store import ContainerExists, NoSuchContainer, Record, Store

OCI_VERSION = hooks.OCI_VERSION
SAVED_FD_BASE = 100
"""create saves the process's stdio and preserved descriptors at or above this number:
above every number they are moved back to in the container."""

CREATED, RUNNING, STOPPED, PAUSED = "created", "running", "stopped", "paused"


class Runtime:
    """The containers of one ``--root``."""

    def __init__(self, root: str, *, warn: Any = None) -> None:
        self.store = Store(root)
        self.warn = warn or (lambda message: None)
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self.store.prepare()
            self._engine = Engine(self.store.paths, warn=self.warn)
        return self._engine

    def _ct(self, record: Record) -> Container:
        return self.engine.container(record.ctid)

    def _bundle(self, record: Record) -> spec.Bundle:
        return spec.Bundle.load(record.bundle, self.store.config(record.id))

    # -- create ---------------------------------------------------------------------------

    def create(self, cid: str, bundle_dir: str, *, pid_file: str | None = None,
               console_socket: str | None = None, preserve_fds: int = 0) -> None:
        bundle = spec.Bundle.load(bundle_dir)
        spec.check(bundle)
        if bundle.terminal and not console_socket:
            raise InvalidValue("config.json: process.terminal is true: give --console-socket")
        engine = self.engine
        config = self._config(cid, bundle)
        with self.store.ids_lock():
            if (self.store.dir(cid) / "oci.json").exists():
                raise ContainerExists(f"container {cid} already exists")
            ctid = self.store.free_ctid()
            ct = engine.container(ctid)
            # any declared parameter: the CT is made and started at once ("oci" is neither
            # create's nor set's list of what may be given)
            try:
                changes, _parsed = engine.registry.plan_changes(ctid, {}, config.pop("options"),
                                                                verb="oci")
            except InvalidValue as exc:
                raise InvalidValue(f"config.json (linux.resources or {spec.ANNOTATION_PREFIX}* "
                                   f"annotations): {exc.message}") from None
            values = {**config, **{k: v for k, v in changes.new_values().items() if v is not None}}
            record = Record(id=cid, ctid=ctid, bundle=str(bundle.path), created=_now(),
                            annotations=bundle.annotations)
            # On record before anything of the CT exists: from here on 'delete --force ID'
            # finds and removes whatever a killed create made.
            self.store.dir(cid).mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.store.config(cid), json.dumps(bundle.spec), durable=False,
                         mode=0o600)
            self.store.save(record)
            checkpoint("oci:recorded")
            conf = ConfigFile(ct.config.path)
            conf.update(values)
            conf.save()
            checkpoint("oci:configured")
        try:
            self._start(record, bundle, console_socket, preserve_fds, pid_file)
        except BaseException:
            try:
                self._remove(record)
            except VzError as exc:
                self.warn(f"warning: container {cid}: {exc}")
            # the lifecycle's end after a failed create (a createRuntime or createContainer
            # hook, say): destroyed, then the poststop hooks, as runc does
            self._poststop(record, bundle.spec)
            raise

    def _config(self, cid: str, bundle: spec.Bundle) -> dict[str, Any]:
        options = spec.options(bundle)
        registry = self.engine.registry
        annotated = {key[len(spec.ANNOTATION_PREFIX):] for key in bundle.annotations
                     if key.startswith(spec.ANNOTATION_PREFIX)}
        for name in options:
            if name not in registry.parameters:
                where = (f"annotation {spec.ANNOTATION_PREFIX}{name}" if name in annotated
                         else "linux.resources")
                raise InvalidValue(f"config.json: {where}: no active vzcore plugin has the "
                                   f"parameter --{name} (is its plugin installed?)")
        config: dict[str, Any] = {"VE_LAYOUT": LAYOUT, ID_KEY: cid, BUNDLE_KEY: str(bundle.path),
                                  CONFIG_KEY: str(self.store.config(cid)),
                                  "SECCOMP": "off", "options": options}
        if bundle.spec.get("hostname"):
            config["HOSTNAME"] = str(bundle.spec["hostname"])
        linux = bundle.linux()
        if any(n.get("type") == "user" for n in linux.get("namespaces") or []):
            # exactly the spec's map; LOCAL_UID/GID (the host IDs of its root) are what the
            # engine and the plugins chown the files they make for the container's root to
            idmap = spec.id_map(linux)
            config["LOCAL_UID"], config["LOCAL_GID"] = (str(i) for i in idmap.root)
            config["LOCAL_UID_MAP"] = format_ranges(idmap.uid_ranges)
            config["LOCAL_GID_MAP"] = format_ranges(idmap.gid_ranges)
        capabilities = (bundle.spec.get("process") or {}).get("capabilities")
        if capabilities is not None and spec.capability_setting(capabilities):
            config["CAPABILITY"] = spec.capability_setting(capabilities)
        joined_mnt = spec.namespace_paths(linux).get("mnt")
        if joined_mnt:  # delete unmounts the view there (vzcore.oci.mountns)
            config[JOINED_MNT_KEY] = mountns.record(joined_mnt, str(bundle.rootfs))
        return config

    def _start(self, record: Record, bundle: spec.Bundle, console_socket: str | None,
               preserve_fds: int, pid_file: str | None) -> None:
        from vzcore.lifecycle.start import start

        engine = self.engine
        ct = self._ct(record)
        ct.private.mkdir(parents=True, exist_ok=True, mode=0o700)
        ct.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        fifo = self.store.fifo(record.id)
        if not fifo.exists():
            # runc's mode: the process opens it as the spec's user, maybe without
            # CAP_DAC_OVERRIDE; only through its O_PATH descriptor (the directory is 0700)
            os.mkfifo(fifo, 0o600)
            os.chown(fifo, *ct.root_owner)
            os.chmod(fifo, 0o622)
        listen = int(os.environ.get("LISTEN_FDS") or 0)
        # What the container's process needs from here is opened here, before the start,
        # and inherited by init (the engine forks the holder here: LOCAL_HOLDER_OPTION).
        with _saved(range(3), SAVED_FD_BASE) as stdio, \
                _saved(range(3, 3 + max(preserve_fds, listen)), SAVED_FD_BASE + 3) as kept, \
                _held(_open_fifo(fifo)) as fifo_fd, \
                _held(_connect(console_socket) if console_socket and bundle.terminal
                      else None) as console, \
                hooks.serve_create_runtime(bundle.spec, lambda: self.state(record.id)) as asked:
            options: dict[str, Any] = {FIFO_OPTION: fifo_fd, STDIO_OPTION: stdio,
                                       PRESERVE_OPTION: kept, LOCAL_HOLDER_OPTION: True,
                                       **_namespace_options(bundle)}
            if console is not None:
                options[CONSOLE_OPTION] = console
            if asked is not None:  # the builder asks for the createRuntime hooks
                options[HOOKS_OPTION] = asked
            start(engine, ct, **options)
        state = self.state(record.id)
        if pid_file:
            _write_pid_file(pid_file, state["pid"])
        checkpoint("oci:created")

    # -- start, state, kill ---------------------------------------------------------------

    def start(self, cid: str) -> None:
        try:
            self._start_locked(cid)
        except _StartFailed as failed:
            # a prestart or startContainer hook failed: the runtime spec says stop the
            # container and go on at the lifecycle's delete (which runs the poststop hooks)
            self.delete(cid, force=True)
            raise failed.error from None

    def _start_locked(self, cid: str) -> None:
        record = self.store.load(cid)
        ct = self._ct(record)
        with self.engine.lock(ct, "oci-start"):
            state = self.engine.state(ct)
            fifo = self.store.fifo(cid)
            if state is None or not state.is_running:
                raise NotRunning(f"container {cid} is not running: it cannot start")
            if not fifo.exists():
                raise VzError(f"container {cid} was started already")
            assert state.init is not None
            bundle = self._bundle(record)
            if bundle.spec.get("process") is None:
                _kill_wait(state.init)
                raise InvalidValue(f"container {cid}: config.json has no process to start")
            created = self.state(cid)
            try:
                hooks.run_on_host(bundle.spec, "prestart", created)
            except VzError as exc:
                _kill_wait(state.init)
                raise _StartFailed(exc) from None
            try:
                _release(fifo, state.init)
            except _StartFailed:
                _kill_wait(state.init)
                raise
            fifo.unlink()
        # The state the program started in: a short one may have ended already.
        hooks.run_on_host(bundle.spec, "poststart", {**created, "status": RUNNING},
                          warn=self.warn)

    def state(self, cid: str) -> dict[str, Any]:
        """The runtime-spec state of ``cid``."""
        record = self.store.load(cid)
        status, pid = self._status(record)
        return {"ociVersion": OCI_VERSION, "id": cid, "status": status, "pid": pid,
                "bundle": record.bundle, "rootfs": str(self._bundle(record).rootfs)
                if self.store.config(cid).exists() else "",
                "created": record.created, "owner": record.owner,
                "annotations": record.annotations}

    def _status(self, record: Record) -> tuple[str, int]:
        state = self.engine.state(self._ct(record))
        if state is None or state.init is None or not state.is_running:
            return STOPPED, 0
        if state.cgroups is not None and state.cgroups.frozen():
            return PAUSED, state.init.pid
        if self.store.fifo(record.id).exists():
            return CREATED, state.init.pid
        return RUNNING, state.init.pid

    def kill(self, cid: str, sig: int, *, all_processes: bool = False) -> None:
        record = self.store.load(cid)
        state = self.engine.state(self._ct(record))
        if state is None or not state.is_running:
            raise NotRunning(f"container {cid} is not running")
        assert state.init is not None
        targets = [state.init.pid]
        if all_processes and state.cgroups is not None:
            targets = sorted(state.cgroups.pids() | {state.init.pid})
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def states(self) -> list[dict[str, Any]]:
        found = []
        for cid in self.store.ids():
            try:
                found.append(self.state(cid))
            except VzError:
                continue
        return found

    def ps(self, cid: str) -> list[int]:
        record = self.store.load(cid)
        state = self.engine.state(self._ct(record))
        if state is None or not state.is_running or state.cgroups is None:
            raise NotRunning(f"container {cid} is not running")
        return sorted(state.cgroups.pids())

    # -- pause, resume, update --------------------------------------------------------------

    def pause(self, cid: str) -> None:
        self._freeze(cid, True)

    def resume(self, cid: str) -> None:
        self._freeze(cid, False)

    def _freeze(self, cid: str, frozen: bool) -> None:
        record = self.store.load(cid)
        ct = self._ct(record)
        with self.engine.lock(ct, "pause" if frozen else "resume"):
            state = self.engine.state(ct)
            if state is None or not state.is_running or state.cgroups is None:
                raise NotRunning(f"container {cid} is not running")
            if not frozen:
                state.cgroups.thaw()
                return
            for d in state.cgroups.dirs:
                if d.version == 2:
                    (d.directory / "cgroup.freeze").write_text("1")
                elif "freezer" in d.controllers:
                    (d.directory / "freezer.state").write_text("FROZEN")

    def update(self, cid: str, resources: Mapping[str, Any]) -> None:
        """``update --resources``: OCI's resources as vzctl set options, applied live and
        saved (the plugins' own ``vz_apply``)."""
        from vzcore.lifecycle.setparams import set_parameters

        spec._check_resources(resources)
        given = spec.resource_options(resources)
        if not given:
            return
        record = self.store.load(cid)
        set_parameters(self.engine, self._ct(record), given, save=True)

    # -- delete -----------------------------------------------------------------------------

    def delete(self, cid: str, *, force: bool = False) -> None:
        try:
            record = self.store.load(cid)
        except NoSuchContainer:
            if force:  # runc: a forced delete of what is gone already succeeds
                return
            raise
        status, _pid = self._status(record)
        if status != STOPPED and not force:  # the runtime spec: also a created one
            raise VzError(f"container {cid} is {status}: stop it first or use 'delete --force'")
        try:
            config = self._bundle(record).spec
        except VzError:  # a create killed before it copied the spec
            config = {}
        self._remove(record)
        self._poststop(record, config)

    def _poststop(self, record: Record, config: Mapping[str, Any]) -> None:
        hooks.run_on_host(config, "poststop", {"ociVersion": OCI_VERSION, "id": record.id,
                                               "status": STOPPED, "pid": 0,
                                               "bundle": record.bundle,
                                               "annotations": record.annotations},
                          warn=self.warn)

    def _remove(self, record: Record) -> None:
        """Kill what runs, tear the CT down (cgroups, plugin records, the root's mount) and
        remove its config, areas and the ID's directory; idempotent."""
        from vzcore.lifecycle.stop import stop

        engine = self.engine
        ct = self._ct(record)
        state = engine.state(ct) if ct.exists else None
        if state is not None and state.is_running:
            assert state.init is not None
            if state.cgroups is not None:
                state.cgroups.thaw()
            _kill_wait(state.init)
        if ct.exists:
            try:
                stop(engine, ct, fast=True)
            except NotRunning:
                pass
            except VzError as exc:  # the rest is removed anyway: nothing runs any more
                self.warn(f"warning: container {record.id}: {exc}")
                if state is not None:
                    state.remove()
        umount_root(ct.root)
        for path in (ct.root, ct.private):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
        ct.config.path.unlink(missing_ok=True)
        directory = self.store.dir(record.id)
        for name in ("exec.fifo", "config.json", "oci.json"):
            (directory / name).unlink(missing_ok=True)
        try:
            directory.rmdir()
        except FileNotFoundError:
            pass

    # -- exec -------------------------------------------------------------------------------

    def exec(self, cid: str, process: dict[str, Any], *, detach: bool, pid_file: str | None,
             console_socket: str | None, preserve_fds: int = 0) -> int:
        from vzcore.oci import joiner

        record = self.store.load(cid)
        ct = self._ct(record)
        state = self.engine.state(ct)
        if state is None or not state.is_running:
            raise NotRunning(f"container {cid} is not running")
        spec._check_process(process)
        if ct.idmap is not None:
            spec.check_user_mapped(process, ct.idmap)
        if process.get("terminal") and not console_socket:
            raise InvalidValue("exec: the process has a terminal: give --console-socket")
        bundle = self._bundle(record)
        seccomp = (bundle.linux() or {}).get("seccomp")
        return joiner.run(self.engine, ct, state, process, detach=detach, pid_file=pid_file,
                          console_socket=console_socket, seccomp=seccomp,
                          preserve_fds=preserve_fds)


def _namespace_options(bundle: spec.Bundle) -> dict[str, Any]:
    """The start's options for the namespaces the spec joins by path or leaves out (the
    runtime's own, shared); in a joined mount namespace the root is ``root.path`` as that
    namespace shows it."""
    join = spec.namespace_paths(bundle.linux())
    options: dict[str, Any] = {JOIN_OPTION: join,
                               SHARE_OPTION: spec.shared_namespaces(bundle.linux())}
    if "mnt" in join:
        options[ROOT_OPTION] = str(bundle.rootfs)
    return options


def umount_root(root: Path) -> None:
    """Unmount everything at the CT's root: the bundle's rootfs bound there and, for a
    container sharing the runtime's mount namespace, its own view on top (each detaching
    unmount takes what is below that mount along)."""
    for _ in range(8):  # only vzcore-oci mounts there; a bound: never loop for ever
        if not mounts.is_mount_point(root):
            return
        mounts.umount(root, detach=True)


class _StartFailed(Exception):
    """A prestart or startContainer hook failed: ``start`` deletes the container (outside
    its lock)."""

    def __init__(self, error: VzError) -> None:
        super().__init__(str(error))
        self.error = error


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


@contextmanager
def _saved(fds: Sequence[int] | range, base: int) -> Iterator[list[int]]:
    """Copies of ``fds`` at ``base`` and above (close-on-exec: the forked init inherits
    them, no exec'd helper does); a closed one is replaced by /dev/null."""
    copies = []
    try:
        for fd in fds:
            try:
                copies.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base))
            except OSError as exc:
                if exc.errno != errno.EBADF:
                    raise
                null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
                copies.append(fcntl.fcntl(null, fcntl.F_DUPFD_CLOEXEC, base))
                os.close(null)
        yield copies
    finally:
        for fd in copies:
            os.close(fd)


def _open_fifo(fifo: Path) -> int:
    """The exec fifo ``O_PATH`` (init opens it for writing through this descriptor, as
    the spec's user, once its root switch hid the store)."""
    return os.open(fifo, os.O_PATH | os.O_CLOEXEC)


def _connect(path: str) -> int:
    """A connection to ``--console-socket`` (init sends the pty's master over it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(os.path.abspath(path))
    except OSError as exc:
        sock.close()
        raise InvalidValue(f"--console-socket {path}: {exc.strerror}") from None
    return sock.detach()


@contextmanager
def _held(fd: int | None) -> Iterator[int | None]:
    """``fd`` moved to :data:`SAVED_FD_BASE` or above (above every number the process's
    descriptors are moved to in the container), closed on leaving."""
    if fd is None:
        yield None
        return
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, SAVED_FD_BASE)
    finally:
        os.close(fd)
    try:
        yield moved
    finally:
        os.close(moved)


def _release(fifo: Path, init: ProcessId) -> None:
    """runc's exec fifo: opening it for reading lets the waiting init go on; it writes one
    byte once it ran the startContainer hooks, and its end closes when it execs the
    program (close-on-exec): wait for both, so that the poststart hooks run after the
    program started.  Instead of the byte, ``E`` and a message: a startContainer hook
    failed (:class:`_StartFailed`)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    said = b""
    try:
        while True:
            ready, _w, _x = select.select([fd], [], [], 0.05)
            if ready:
                # Before init opened its end, the fifo reads empty too: only after the byte
                # is an empty read its close.
                data = os.read(fd, 4096)
                said += data
                if not data and said:
                    break
            if not init.is_alive():
                said += _drain(fd)
                if said:
                    break  # the program ran and ended already, or the hook's failure
                raise VzError("the container's process exited before it could start")
    finally:
        os.close(fd)
    if said.startswith(b"E"):
        raise _StartFailed(VzError(said[1:].decode(errors="replace")))


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def _kill_wait(init: ProcessId, timeout: float = 10.0) -> None:
    try:
        os.kill(init.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_exit(init, timeout):
        raise VzError(f"process {init.pid} survived SIGKILL for {timeout:.0f} s")


def _write_pid_file(path: str, pid: int) -> None:
    atomic_write(Path(path).resolve(), str(pid), durable=False)


def parse_signal(text: str | None) -> int:
    """``9``, ``KILL`` or ``SIGKILL``; the default is SIGTERM."""
    if not text:
        return signal.SIGTERM
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name.startswith("SIGRTMIN+") and name[9:].isdigit():
            return signal.SIGRTMIN + int(name[9:])
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise InvalidValue(f"invalid signal {text!r}: give a number or a name such as TERM or KILL")
