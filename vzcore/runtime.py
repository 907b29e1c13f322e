"""A started CT's state file, and the ``run`` object lifecycle hooks receive.

The state file (``/run/vz/CTID.json``) is written atomically at every step of a start
that makes something cleanup must find: the cgroups, the init's identity, and each
plugin's typed record (:mod:`vzcore.records`), which the plugin assigns to ``run.record``
before it makes what the record names.  Each assignment is one write: a start writes the
file three times for the core (cgroups, init, running) and once per plugin that records.  Every command
verifies the file against the kernel: the CT runs only while the recorded init (PID *and*
start time) is alive, so a reused PID is never mistaken for it, and a file whose init is
gone is stale: the next command cleans up from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vzcore.conffile import atomic_write
from vzcore.container import Container, ctid_of_file
from vzcore.errors import VzError, describe
from vzcore.linux.cgroups import CgroupSet
from vzcore.linux.procfs import ProcessId, namespace
from vzcore.records import PluginRecord, RecordError, decode, encode

if TYPE_CHECKING:
    from vzcore.plugin.manager import Plugins

FORMAT = 2
"""The state file's format; the previous release wrote none (its records were untyped
dicts, read as records of version 0)."""
STARTING = "starting"
RUNNING = "running"


@attrs.define
class State:
    """The contents of one CT's state file.

    :ivar pidns: the CT's PID namespace (``pid:[N]``), which proves a process is the CT's.
    :ivar variants: the variants the start used, by config key (``VE_LAYOUT``): teardown
        unmounts with the provider of the recorded layout, not of the config's.
    :ivar records: each plugin's entry (``{"version": N, "record": {...}}``) by plugin
        name, as stored: a plugin that is not active now keeps its entry unchanged.
    :ivar recovered: rebuilt from the kernel (the CT's groups and init) because the file
        was lost; it has no plugin records.
    """

    path: Path
    ctid: int
    phase: str = STARTING
    init: ProcessId | None = None
    pidns: str | None = None
    cgroups: CgroupSet | None = None
    mounted_by_start: bool = False
    variants: dict[str, str] = attrs.field(factory=dict)
    records: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    writable: bool = True
    recovered: bool = False
    vzctl_pid: int | None = None
    _typed: dict[str, PluginRecord] = attrs.field(factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path, ctid: int) -> State | None:
        """The state of CT ``ctid``, or ``None`` when it has none."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise VzError(f"CT {ctid}: unreadable state file {path}: {describe(exc)}; remove it after "
                          "checking that no process of the CT runs") from exc
        return cls.from_json(path, ctid, data)

    @classmethod
    def from_json(cls, path: Path, ctid: int, data: dict[str, Any]) -> State:
        """The state :meth:`to_json` gave (as read from the file at ``path``)."""
        fmt = data.get("format", 1)
        if fmt > FORMAT:
            raise VzError(f"CT {ctid}: state file {path} has format {fmt}, newer than this vzcore "
                          f"reads ({FORMAT}); stop the CT with the vzcore that started it")
        records = {name: dict(entry) if fmt >= FORMAT else {"version": 0, "record": dict(entry)}
                   for name, entry in data.get("plugins", {}).items()}
        init = data.get("init")
        return cls(
            path=path,
            ctid=ctid,
            phase=data.get("phase", STARTING),
            init=ProcessId(init["pid"], init["start_time"]) if init else None,
            pidns=data.get("pidns"),
            cgroups=CgroupSet.from_json(data["cgroups"]) if data.get("cgroups") else None,
            mounted_by_start=bool(data.get("mounted_by_start")),
            variants=dict(data.get("variants", {})),
            records=records,
            vzctl_pid=data.get("vzctl_pid") if isinstance(data.get("vzctl_pid"), int) else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "ctid": self.ctid,
            "phase": self.phase,
            "init": attrs.asdict(self.init) if self.init else None,
            "pidns": self.pidns,
            "cgroups": self.cgroups.to_json() if self.cgroups else None,
            "mounted_by_start": self.mounted_by_start,
            "variants": self.variants,
            "plugins": self.records,
            "vzctl_pid": os.getpid(),
        }

    def save(self) -> None:
        """Write the file atomically."""
        if not self.writable:
            raise VzError(f"CT {self.ctid}: the state file cannot be changed from inside the CT")
        atomic_write(self.path, json.dumps(self.to_json(), sort_keys=True) + "\n",
                     durable=False, mode=0o600)

    def record(self, plugin: str, cls: type[PluginRecord] | None) -> Any:
        """``plugin``'s record as ``cls`` (upgraded from an older version, or refused with
        :class:`RecordError`), or ``None`` when it recorded nothing."""
        if plugin in self._typed:
            return self._typed[plugin]
        entry = self.records.get(plugin)
        if entry is None:
            return None
        if cls is None:
            raise RecordError(f"CT {self.ctid}: the {plugin} plugin declares no record class "
                              "(PluginInfo.record) but has a record in the state file")
        value = decode(cls, entry, ctid=self.ctid, plugin=plugin)
        self._typed[plugin] = value
        return value

    def set_record(self, plugin: str, value: PluginRecord, *, save: bool = True) -> None:
        """Store ``plugin``'s record; with ``save`` (the rule: before making what it
        names) the file is written at once."""
        self._typed[plugin] = value
        self.records[plugin] = encode(value)
        if save:
            self.save()

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    @property
    def is_running(self) -> bool:
        """True while the recorded init process is alive."""
        return self.init is not None and self.init.is_alive()

    @property
    def starting(self) -> bool:
        """True while a start is going on: no init recorded yet, and the vzctl that wrote
        the file still runs."""
        return self.init is None and self.vzctl_pid is not None \
            and ProcessId.of(self.vzctl_pid) is not None

    @property
    def pid_namespace(self) -> str | None:
        """The CT's PID namespace (``pid:[N]``): recorded at start, else read from the
        live init (a state file written before it was recorded)."""
        if self.pidns is None and self.is_running:
            assert self.init is not None
            return namespace(self.init.pid, "pid")
        return self.pidns


@attrs.define
class Run:
    """What lifecycle hooks know about a CT's start or its running instance.

    :ivar state: the state file (shared by all plugins).
    :ivar plugins: the active plugins (what :func:`vzcore.lifecycle.enter.run_in_ct` needs).
    :ivar plugin: the plugin this view belongs to (set by the engine per hook call).
    :ivar root: inside the start's child: the CT root's path before the root switch.
    :ivar options: verb flags (``fast``, ``wait``...).
    """

    ct: Container
    state: State
    plugins: Plugins
    plugin: str = ""
    root: str = ""
    options: dict[str, Any] = attrs.field(factory=dict)

    def for_plugin(self, name: str) -> Run:
        return attrs.evolve(self, plugin=name)

    @property
    def record(self) -> Any:
        """This plugin's record (its :attr:`PluginInfo.record <vzcore.plugin.PluginInfo.record>`
        instance), or ``None`` before it recorded anything.

        Assigning a new record writes the state file at once: assign what you will make
        *before* making it, once per hook (not per item), so a killed vzctl leaves nothing
        the next stop cannot find.
        """
        if self.plugin not in self.state.records:
            return None  # without loading the record class (a lazy reference imports it)
        return self.state.record(self.plugin, self._record_class())

    @record.setter
    def record(self, value: PluginRecord) -> None:
        self._check(value)
        self.state.set_record(self.plugin, value)

    def amend(self, value: PluginRecord) -> None:
        """Replace this plugin's record *without* writing the file: for what undoes nothing
        (what the kernel turned out not to enforce).  It is written with the core's next
        write (a start writes the file once more when init runs)."""
        self._check(value)
        self.state.set_record(self.plugin, value, save=False)

    def _check(self, value: PluginRecord) -> None:
        cls = self._record_class()
        if cls is None or not isinstance(value, cls):
            raise RecordError(f"CT {self.ct.ctid}: the {self.plugin or '(no)'} plugin recorded a "
                              f"{type(value).__name__}, not its PluginInfo.record class")

    def _record_class(self) -> type[PluginRecord] | None:
        info = self.plugins.infos.get(self.plugin)
        return info.record_class(self.plugin) if info is not None else None

    @property
    def cgroups(self) -> CgroupSet:
        if self.state.cgroups is None:
            raise VzError(f"CT {self.ct.ctid} has no cgroups recorded")
        return self.state.cgroups

    @property
    def init_pid(self) -> int:
        if self.state.init is None:
            raise VzError(f"CT {self.ct.ctid} has no init process recorded")
        return self.state.init.pid


def states(run_dir: Path) -> Iterator[State]:
    """Every CT's state file in ``run_dir`` (``CTID.json``, canonical names only), loaded,
    in CT order; one that cannot be read is skipped (the CT's own commands report it).

    For a plugin that serves several CTs (a shared daemon) and asks which use it::

        users = [s for s in states(run_dir)
                 if (s.is_running or s.starting) and s.record("lxcfs", LxcfsRecord)]
    """
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return
    found = sorted((ctid, name) for name in names
                   if (ctid := ctid_of_file(name, ".json")) is not None)
    for ctid, name in found:
        try:
            state = State.load(run_dir / name, ctid)
        except VzError:
            continue
        if state is not None:
            yield state
