"""A started CT's state file, and the ``run`` object lifecycle hooks receive.

The state file (``/run/vz/CTID.json``) is written atomically at every step of a start
that makes something cleanup must find: the cgroups, the init's identity, and whatever
each plugin records in its own part (``run.record``) before it makes it.  Every command
verifies the file against the kernel: the CT runs only while the recorded init (PID *and*
start time) is alive, so a reused PID is never mistaken for it, and a file whose init is
gone is stale: the next command cleans up from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vzcore.conffile import atomic_write
from vzcore.container import Container
from vzcore.errors import VzError, describe
from vzcore.linux.cgroups import CgroupSet
from vzcore.linux.procfs import ProcessId, namespace

if TYPE_CHECKING:
    from vzcore.plugin.manager import Plugins

STARTING = "starting"
RUNNING = "running"


@attrs.define
class State:
    """The contents of one CT's state file.

    :ivar pidns: the CT's PID namespace (``pid:[N]``), which proves a process is the CT's.
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
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    writable: bool = True
    recovered: bool = False

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
            plugins={k: dict(v) for k, v in data.get("plugins", {}).items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ctid": self.ctid,
            "phase": self.phase,
            "init": attrs.asdict(self.init) if self.init else None,
            "pidns": self.pidns,
            "cgroups": self.cgroups.to_json() if self.cgroups else None,
            "mounted_by_start": self.mounted_by_start,
            "variants": self.variants,
            "plugins": self.plugins,
            "vzctl_pid": os.getpid(),
        }

    def save(self) -> None:
        """Write the file atomically."""
        if not self.writable:
            raise VzError(f"CT {self.ctid}: the state file cannot be changed from inside the CT")
        atomic_write(self.path, json.dumps(self.to_json(), sort_keys=True) + "\n",
                     durable=False, mode=0o600)

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
    def pid_namespace(self) -> str | None:
        """The CT's PID namespace (``pid:[N]``): recorded at start, else read from the
        live init (a state file written before it was recorded)."""
        if self.pidns is None and self.is_running:
            assert self.init is not None
            return namespace(self.init.pid, "pid")
        return self.pidns


class Record(MutableMapping[str, Any]):
    """One plugin's part of the state file; every change is written at once."""

    def __init__(self, state: State, plugin: str) -> None:
        self._state = state
        self._plugin = plugin

    def _data(self) -> dict[str, Any]:
        return self._state.plugins.get(self._plugin, {})

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._state.plugins.setdefault(self._plugin, {})[key] = value
        self._state.save()

    def __delitem__(self, key: str) -> None:
        del self._state.plugins.setdefault(self._plugin, {})[key]
        self._state.save()

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def update_all(self, **values: Any) -> None:
        """Set several keys with one write of the state file."""
        self._state.plugins.setdefault(self._plugin, {}).update(values)
        self._state.save()


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
    def record(self) -> Record:
        """This plugin's part of the state file: record what you make before making it."""
        return Record(self.state, self.plugin)

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
