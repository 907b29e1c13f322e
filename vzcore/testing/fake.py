"""A recording fake of the kernel calls, for the contract suites' part that needs no root.

:class:`FakeKernel` stands in for the effects a plugin's host-side hooks have: it patches
the thin wrappers of :mod:`vzcore.linux` (mounts, cgroup file writes, ownership changes)
and watches the files of a private ``VZ_ROOT``, and it writes every effect, in order, to a
journal together with every write of the CT's state file.  Comparing the two orders is
how the suites check "record before make" without root.

The seam for the state file is :meth:`vzcore.runtime.State.save`: each call is one
``record`` event whose detail is the plugin's part of what is written (read from
:meth:`State.to_json <vzcore.runtime.State.to_json>` under ``"plugins"``, see
:func:`plugin_record`).

A plugin that makes host objects through wrappers of its own (the network plugin's
netlink calls) gives the suite doubles of them built on :meth:`FakeKernel.make` and
:meth:`FakeKernel.remove` (``kernel_doubles`` of the suite class).

:class:`FakeHost` plays the core's part: a ``VZ_ROOT`` in a temporary directory, a
cgroup tree of plain files, one plugin loaded by module name, and the hooks of a start
and a stop called in the core's order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

MAKE = "make"
REMOVE = "remove"
SET = "set"
RECORD = "record"
CORE = "(core)"
"""The hook name of effects the core makes between hooks."""

START_HOOKS = ("vz_pre_start", "vz_setup_host", "vz_post_start")
"""The host-side hooks of a start that the fake runs, in the core's order."""


class Killed(BaseException):
    """vzctl "killed" at a checkpoint of the fake: nothing after it runs (a BaseException,
    so that no ``except Exception`` of a plugin can swallow it, as none can a SIGKILL)."""


@attrs.frozen
class Event:
    """One entry of the journal: a kernel effect or a write of the state file.

    :ivar action: ``make``, ``remove``, ``set`` (a setting of an existing object) or
        ``record`` (a write of the state file).
    :ivar kind: ``file``, ``directory``, ``mount``, ``cgroup``, ``owner``, ``state`` or a
        kind a plugin's double names (``link``).
    :ivar target: what the effect touched (a path, a link name).
    :ivar hook: the hook that was running.
    :ivar detail: for ``record``, the plugin's part of the state file as written; for
        ``set``, the value.
    """

    action: str
    kind: str
    target: str
    hook: str
    detail: Any = None

    def describe(self) -> str:
        return f"{self.action} {self.kind} {self.target} in {self.hook}"


def plugin_record(state_json: Mapping[str, Any], plugin: str) -> Any:
    """The part of a state file (as JSON) that belongs to ``plugin``.

    This is the one place that knows where plugin records live in the state file; the
    rest of the suites only compare what it returns."""
    entry = (state_json.get("plugins") or {}).get(plugin)
    return entry.get("record") if isinstance(entry, dict) else None


def record_names(record: Any) -> Iterator[str]:
    """Every string a record holds (keys and values, at any depth)."""
    if isinstance(record, str):
        yield record
    elif isinstance(record, Mapping):
        for key, value in record.items():
            yield str(key)
            yield from record_names(value)
    elif isinstance(record, (list, tuple, set, frozenset)):
        for value in record:
            yield from record_names(value)


def names_target(record: Any, target: str) -> bool:
    """Whether ``record`` names ``target``: the same string, or a directory above it."""
    for name in record_names(record):
        if name and (target == name or target.startswith(name.rstrip("/") + "/")):
            return True
    return False


class FakeKernel:
    """The journal and the patches; install with :meth:`install` (a pytest monkeypatch).

    :param watched: the directory whose files are tracked as host objects.
    :param ignored: paths below ``watched`` that are not the plugin's objects (the CT's
        own tree, the state file, the configs).
    :param plugin: the plugin whose record the ``record`` events carry.
    """

    def __init__(self, watched: Path, ignored: Callable[[Path], bool], plugin: str) -> None:
        self.watched = watched
        self.ignored = ignored
        self.plugin = plugin
        self.events: list[Event] = []
        self.hook = CORE
        self.mounted: set[str] = set()
        self.objects: dict[tuple[str, str], str] = {}
        """Objects alive that a plugin's doubles made: (kind, name) -> the hook that made it."""
        self.kill_at: int | None = None
        self.checkpoints = 0
        self.labels: list[str] = []
        """What each checkpoint came before, for messages."""
        self.pid = os.getpid()
        self._files = self._scan()

    # -- checkpoints and the journal ----------------------------------------------------

    def _scan(self) -> set[str]:
        found: set[str] = set()
        for top, dirs, files in os.walk(self.watched):
            for name in [*dirs, *files]:
                path = Path(top, name)
                if not self.ignored(path):
                    found.add(str(path))
            dirs[:] = [d for d in dirs if not self.ignored(Path(top, d))]
        return found

    def sync_files(self) -> None:
        """Journal the files that appeared or vanished since the last look."""
        now = self._scan()
        for path in sorted(now - self._files):
            self.events.append(Event(MAKE, "file", path, self.hook))
        for path in sorted(self._files - now, reverse=True):
            self.events.append(Event(REMOVE, "file", path, self.hook))
        self._files = now

    def checkpoint(self, label: str) -> None:
        """A point where vzctl may die: before every effect and every state write, and
        at the end of each hook; ``label`` says what comes next."""
        self.sync_files()
        if self.kill_at is not None and self.checkpoints >= self.kill_at:
            raise Killed(f"killed at checkpoint {self.checkpoints}, before {label}")
        self.checkpoints += 1
        self.labels.append(label)

    def note(self, action: str, kind: str, target: str, detail: Any = None) -> None:
        if os.getpid() != self.pid:
            return  # a child a hook forked into the CT's namespaces: not the host's journal
        event = Event(action, kind, str(target), self.hook, detail)
        self.checkpoint(event.describe())
        self.events.append(event)

    def make(self, kind: str, name: str) -> None:
        """For a plugin's double: ``name`` of ``kind`` is made now (refused if it exists,
        as the kernel does)."""
        if (kind, name) in self.objects:
            raise FileExistsError(f"{kind} {name} exists")
        self.note(MAKE, kind, name)
        self.objects[(kind, name)] = self.hook

    def remove(self, kind: str, name: str) -> bool:
        """For a plugin's double: remove ``name``; ``False`` when there was none."""
        self.note(REMOVE, kind, name)
        return self.objects.pop((kind, name), None) is not None

    def exists(self, kind: str, name: str) -> bool:
        return (kind, name) in self.objects

    def recorded_names(self) -> set[str]:
        """Every name any record of the journal held."""
        return {name for e in self.events if e.action == RECORD for name in record_names(e.detail)}

    def leftovers(self) -> list[str]:
        """Everything made that is still there (files, mounts, doubles' objects); a
        directory above a recorded path may stay (it holds every CT's, like /run/vz)."""
        self.sync_files()
        holders = {str(parent) for name in self.recorded_names() if name.startswith("/")
                   for parent in Path(name).parents}
        left = [f"file {p}" for p in sorted(self._files - self._baseline - holders)]
        left += [f"mount {m}" for m in sorted(self.mounted)]
        left += [f"{kind} {name}" for kind, name in sorted(self.objects)]
        return left

    # -- the patches --------------------------------------------------------------------

    def install(self, monkeypatch: pytest.MonkeyPatch,
                doubles: Mapping[str, Callable[[FakeKernel], object]] = {}) -> None:
        """Patch the kernel calls (and the state file's save) for the rest of the test."""
        from vzcore.linux import cgroups, mounts
        from vzcore.runtime import State

        self._baseline = set(self._files)
        fake = self
        original_save = State.save
        original_write = cgroups._write

        def save(state: State) -> None:
            fake.note(RECORD, "state", str(state.path),
                      json.loads(json.dumps(plugin_record(state.to_json(), fake.plugin))))
            original_save(state)

        def cgroup_write(path: Path, value: str) -> None:
            fake.note(SET, "cgroup", str(path), value)
            original_write(path, value)

        def mount(source: Any, target: Any, *_args: Any, **_kwargs: Any) -> None:
            fake.note(MAKE, "mount", str(target), source)
            fake.mounted.add(str(target))

        def umount(target: Any, *, detach: bool = False, missing_ok: bool = True) -> None:
            if str(target) not in fake.mounted and not missing_ok:
                raise OSError(22, f"{target} is not mounted")
            fake.note(REMOVE, "mount", str(target))
            fake.mounted.discard(str(target))

        def chown(path: Any, uid: int, gid: int, *_args: Any, **_kwargs: Any) -> None:
            fake.events.append(Event(SET, "owner", str(path), fake.hook, (uid, gid)))

        monkeypatch.setattr(State, "save", save)
        monkeypatch.setattr(cgroups, "_write", cgroup_write)
        monkeypatch.setattr(mounts, "mount", mount)
        monkeypatch.setattr(mounts, "bind", lambda source, target, **kw: mount(source, target))
        monkeypatch.setattr(mounts, "umount", umount)
        monkeypatch.setattr(mounts, "is_mount_point", lambda path: str(path) in fake.mounted)
        if os.geteuid() != 0:
            # Files written for a CT's root belong to its uid, and trusted.* attributes
            # (the private area's mark) need CAP_SYS_ADMIN: the fake keeps both itself.
            for name in ("chown", "fchown", "lchown"):
                monkeypatch.setattr(os, name, chown)
            self._patch_trusted_xattrs(monkeypatch)
        for dotted, factory in doubles.items():
            module, _, attribute = dotted.rpartition(".")
            monkeypatch.setattr(f"{module}.{attribute}", factory(self))

    def _patch_trusted_xattrs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import errno

        attributes: dict[tuple[str, str], bytes] = {}
        real_set, real_get, real_remove = os.setxattr, os.getxattr, os.removexattr

        def key(path: Any, name: str) -> tuple[str, str]:
            where = str(path) if isinstance(path, int) else os.path.realpath(os.fspath(path))
            return (where, name)

        def setxattr(path: Any, name: str, value: bytes, *args: Any, **kwargs: Any) -> None:
            if not name.startswith("trusted."):
                return real_set(path, name, value, *args, **kwargs)
            self.events.append(Event(SET, "xattr", f"{os.fspath(path)} {name}", self.hook, value))
            attributes[key(path, name)] = value
            return None

        def getxattr(path: Any, name: str, *args: Any, **kwargs: Any) -> bytes:
            if not name.startswith("trusted."):
                return real_get(path, name, *args, **kwargs)
            try:
                return attributes[key(path, name)]
            except KeyError:
                raise OSError(errno.ENODATA, os.strerror(errno.ENODATA), os.fspath(path)) from None

        def removexattr(path: Any, name: str, *args: Any, **kwargs: Any) -> None:
            if not name.startswith("trusted."):
                return real_remove(path, name, *args, **kwargs)
            if attributes.pop(key(path, name), None) is None:
                raise OSError(errno.ENODATA, os.strerror(errno.ENODATA), os.fspath(path))
            return None

        monkeypatch.setattr(os, "setxattr", setxattr)
        monkeypatch.setattr(os, "getxattr", getxattr)
        monkeypatch.setattr(os, "removexattr", removexattr)

    @contextmanager
    def in_hook(self, hook: str) -> Iterator[None]:
        """Attribute the effects inside to ``hook``; a checkpoint when it returns."""
        self.hook = hook
        try:
            yield
            self.checkpoint(f"the return of {hook}")
        finally:
            self.hook = CORE


V2_FILES = {
    "cgroup.procs": "", "cgroup.controllers": "cpuset cpu io memory pids",
    "cgroup.subtree_control": "cpuset cpu io memory pids", "cgroup.freeze": "0",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cpu.weight": "100", "cpu.max": "max 100000", "cpu.stat": "usage_usec 0\n",
    "cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    "cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-1", "cpuset.mems.effective": "0",
    "memory.max": "max", "memory.high": "max", "memory.low": "0", "memory.swap.max": "max",
    "memory.current": "0", "memory.events": "oom 0\noom_kill 0\nmax 0\n",
    "memory.stat": "anon 0\nfile 0\nkernel_stack 0\nsock 0\nshmem 0\n",
    "pids.max": "max", "pids.current": "0", "pids.events": "max 0\n", "io.weight": "default 100\n",
}
"""The interface files of a cgroup v2 group, as plain files: what a fake group holds
(every controller enabled for its children, as the core's ``CgroupSet.create`` leaves it)."""


def fake_cgroupfs(root: Path) -> Any:
    """A cgroup v2 "mount" of plain files at ``root``; returns its Hierarchy."""
    from vzcore.linux.cgroups import Hierarchy

    populate_cgroup(root)
    return Hierarchy("unified", 2, str(root), "/", frozenset(), "/")


def populate_cgroup(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in V2_FILES.items():
        path = directory / name
        if not path.exists():
            path.write_text(text)


@attrs.define
class FakeHost:
    """The core's part of a start and a stop, for one plugin, on a :class:`FakeKernel`.

    :ivar module: the plugin module (it is loaded as ``PLUGINS`` names it).
    :ivar config: the CT's config (``CTID.conf`` keys).
    :ivar global_config: ``vz.conf`` keys.
    """

    tmp: Path
    module: str
    config: Mapping[str, str] = attrs.field(factory=dict)
    global_config: Mapping[str, str] = attrs.field(factory=dict)
    ctid: int = 101
    hooks: tuple[str, ...] = START_HOOKS
    kernel: FakeKernel = attrs.field(init=False)
    hierarchy: Any = attrs.field(init=False, default=None)
    _plugins: Any = attrs.field(init=False, default=None)

    @property
    def root(self) -> Path:
        return self.tmp / "vz"

    def setup(self, monkeypatch: pytest.MonkeyPatch,
              doubles: Mapping[str, Callable[[FakeKernel], object]] = {}) -> FakeHost:
        """Write vz.conf and the CT's config, make its private area and root, load the
        plugin, install the fake."""
        from vzcore.conffile import ConfigFile
        from vzcore.paths import Paths

        paths = Paths(self.root)
        conf = ConfigFile.load(paths.vz_conf, missing_ok=True)
        conf.update({"PLUGINS": self.module, "CGROUP_PARENT": "vzfake", **self.global_config})
        conf.save()
        ct_conf = ConfigFile.load(paths.ct_conf(self.ctid), missing_ok=True)
        ct_conf.update({"HOSTNAME": f"ct{self.ctid}", **self.config})
        ct_conf.save()
        ct = self.container()
        for tree in (ct.private, ct.root):
            for sub in ("etc", "dev", "proc", "sys", "sbin"):
                (tree / sub).mkdir(parents=True, exist_ok=True)
        paths.run_dir.mkdir(parents=True, exist_ok=True)  # the core's, before any plugin runs
        self.hierarchy = fake_cgroupfs(self.tmp / "cgroupfs")
        protected = (ct.private, ct.root, paths.conf_dir, paths.vz_conf, paths.state_file(self.ctid))

        def ignored(path: Path) -> bool:
            # The CT's own tree, its config and state are not the plugin's host objects;
            # the state file's temporary copies neither (atomic_write).
            return any(path == p or p in path.parents for p in protected) or \
                path.name.startswith(paths.state_file(self.ctid).name)

        self.kernel = FakeKernel(self.root, ignored, self.plugin_name)
        self.kernel.install(monkeypatch, doubles)
        return self

    @property
    def plugin_name(self) -> str:
        return self.module

    def container(self) -> Any:
        from vzcore.conffile import ConfigFile
        from vzcore.container import Container
        from vzcore.paths import Paths

        paths = Paths(self.root)
        return Container.load(self.ctid, paths, ConfigFile.load(paths.vz_conf, missing_ok=True))

    @property
    def plugins(self) -> Any:
        """The plugin under test alone: nothing installed is loaded, and the core's own
        hookimpls are dropped, so that a bad value the core refuses (or anything else
        the core does) is never taken for the plugin's."""
        if self._plugins is None:
            from vzcore.plugin.manager import load_plugins

            self._plugins = load_plugins({"PLUGINS": self.module}, strict=True, autoload=False)
            self._plugins.pm.unregister(name="core")
        return self._plugins

    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call the plugin's ``hook`` as the engine does, with its effects journaled; a
        :class:`Killed` goes through (the manager wraps only ``Exception``)."""
        with self.kernel.in_hook(hook):
            return [result for _name, result in self.plugins.call_each(hook, **kwargs)]

    def validate(self, changes: Mapping[str, str | None], verb: str) -> None:
        """``vz_validate`` with ``changes`` (key -> new text) against the saved config."""
        from vzcore.changes import Change, ChangeSet

        ct = self.container()
        changeset = ChangeSet({k: Change(k, ct.get(k), v) for k, v in changes.items()})
        self.call("vz_validate", ct=ct, changes=changeset, verb=verb)

    def start(self, pid: int) -> Any:
        """The host side of a start up to ``running``: the core's state write and cgroups,
        then the plugin's start hooks; returns the :class:`~vzcore.runtime.Run`."""
        from vzcore.changes import ChangeSet
        from vzcore.linux.cgroups import CgroupSet
        from vzcore.linux.procfs import ProcessId
        from vzcore.paths import Paths
        from vzcore.runtime import RUNNING, Run, State

        ct = self.container()
        self.call("vz_validate", ct=ct, changes=ChangeSet(), verb="start")
        state = State(Paths(self.root).state_file(self.ctid), self.ctid)
        state.cgroups = CgroupSet.plan("vzfake", f"{self.ctid}", [self.hierarchy])
        state.save()
        for d in state.cgroups.dirs:
            populate_cgroup(d.directory.parent)
            populate_cgroup(d.directory)
        run = Run(ct, state, self.plugins)
        for hook in self.hooks:
            if hook == "vz_post_start":
                state.init = ProcessId.of(pid)  # the core records init before vz_post_start
                state.save()
            kwargs = {"ct": ct, "run": run}
            if hook == "vz_setup_host":
                kwargs["pid"] = pid
            self.call(hook, **kwargs)
        state.phase = RUNNING
        state.save()
        return run

    def stop(self) -> None:
        """``vz_post_stop`` as the next command runs it: from the state file on disk."""
        from vzcore.paths import Paths
        from vzcore.runtime import Run, State

        ct = self.container()
        state = State.load(Paths(self.root).state_file(self.ctid), self.ctid)
        if state is None:
            return
        self.call("vz_post_stop", ct=ct, run=Run(ct, state, self.plugins))
