"""The engine: one object per vzctl invocation that the verbs share.

It knows the paths, reads ``vz.conf`` once, loads the plugins on first need (so
``vzctl --version`` and ``vzctl --help`` load none), builds the parameter registry, and
hands out containers, locks and state files.  The verbs themselves live in
:mod:`vzcore.lifecycle`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.conffile import ConfigFile
from vzcore.container import Container, ctid_of_file
from vzcore.ctgroups import ctids_with_groups, recover
from vzcore.lock import CtLock
from vzcore.paths import DEFAULTS, Paths
from vzcore.plugin.manager import Plugins, load_plugins
from vzcore.runtime import State

if TYPE_CHECKING:
    from vzcore.plugin.registry import Registry


def _print_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Engine:
    """Shared context of one invocation: paths, global config, plugins, registry.

    :param say: where progress messages go (the CLI passes a printer that honours
        ``--quiet``); warnings always go to ``warn``.
    """

    def __init__(self, paths: Paths, *, say: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None, plugins: Plugins | None = None) -> None:
        self.paths = paths
        self.say = say or (lambda _message: None)
        self.warn = warn or _print_stderr
        if plugins is not None:
            self.__dict__["plugins"] = plugins

    @cached_property
    def global_config(self) -> ConfigFile:
        """``vz.conf``; a missing file reads as OpenVZ's defaults."""
        return ConfigFile.load(self.paths.vz_conf, missing_ok=True)

    @cached_property
    def plugins(self) -> Plugins:
        return load_plugins(self.global_config.as_dict())

    @cached_property
    def registry(self) -> Registry:
        """Parameters and vzlist fields of the active plugins (built on first use)."""
        from vzcore.plugin.registry import Registry

        self.plugins.check_conflicts()
        return Registry.build(self.plugins)

    def container(self, ctid: int) -> Container:
        ct = Container.load(ctid, self.paths, self.global_config)
        ct.areas_of = self._host_areas  # asked lazily: loading a CT loads no plugin
        return ct

    def _host_areas(self, ct: Container) -> list[str]:
        """What the active plugins answer to ``vz_host_areas`` for ``ct``."""
        found: list[str] = []
        for _plugin, areas in self.plugins.call_each("vz_host_areas", ct=ct):
            found.extend(str(a) for a in areas)
        return found

    @property
    def lock_dir(self) -> Path:
        return self.paths.host(self.global_config.get("LOCKDIR") or DEFAULTS["LOCKDIR"])

    def lock(self, ct: Container, verb: str) -> CtLock:
        return CtLock(self.lock_dir / f"{ct.ctid}.lck", ct.ctid, verb)

    def state(self, ct: Container) -> State | None:
        """``ct``'s state file; without one, the state of a CT found running in its own
        cgroups (a lost state file), so no verb takes a running CT for a stopped one."""
        path = self.paths.state_file(ct.ctid)
        return State.load(path, ct.ctid) or recover(ct, path)

    def new_state(self, ct: Container) -> State:
        return State(self.paths.state_file(ct.ctid), ct.ctid)

    def ctids(self) -> list[int]:
        """Every CT that has a config file, in ID order."""
        return _ctids_in(self.paths.conf_dir, ".conf")

    def running_ctids(self) -> list[int]:
        """CTs that have a state file (running, or left behind by a killed vzctl) or a
        group of this installation below ``CGROUP_PARENT`` (a lost state file)."""
        found = set(_ctids_in(self.paths.run_dir, ".json"))
        found.update(ctids_with_groups(self.paths, self.global_config.get("CGROUP_PARENT")))
        return sorted(found)


def _ctids_in(directory: Path, suffix: str) -> list[int]:
    """The CTs that have a ``CTID<suffix>`` file in ``directory``: canonical names only."""
    try:
        names = [p.name for p in directory.iterdir()]
    except FileNotFoundError:
        return []
    ctids = (ctid_of_file(name, suffix) for name in names)
    return sorted(c for c in ctids if c is not None)
