"""How plugins declare themselves, and the order the engine runs their hooks in."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from vzcore.errors import VzError

if TYPE_CHECKING:
    from vzcore.records import PluginRecord

SUBSYSTEM_ORDER = (
    "core",
    "template",
    "quota",
    "isolation",
    "beancounters",
    "cpu",
    "devices",
    "network",
    "security",
)
"""Bring-up order of lifecycle hooks (create, mount, start); teardown runs in reverse.

Subsystems not listed (a third party's ``motd``) run after these, by name.  The order is a
documented contract, not pluggy's registration order: isolation builds the CT's ``/dev``
before devices adds nodes to it, and security installs its filter after isolation dropped
capabilities.
"""

SUBSYSTEM_PATTERN = r"[a-z][a-z0-9_-]*"

IN_CT_HOOKS = ("vz_setup_child", "vz_switch_root", "vz_finalize_child", "vz_enter")
"""The hooks that run inside the CT, where the host's files may be out of reach: the engine
imports a plugin's :attr:`PluginInfo.child_modules`, and its lazy :attr:`PluginInfo.record`
when it implements one of them, before the start forks and before a process joins."""


def subsystem_rank(subsystem: str) -> tuple[int, str]:
    """Sort key putting ``subsystem`` in :data:`SUBSYSTEM_ORDER` (unknown ones last, by name)."""
    try:
        return (SUBSYSTEM_ORDER.index(subsystem), "")
    except ValueError:
        return (len(SUBSYSTEM_ORDER), subsystem)


_RESOLVED: dict[str, type[PluginRecord]] = {}
"""Lazy :attr:`PluginInfo.record` references already imported, by reference."""


def is_record_reference(value: str) -> bool:
    """Whether ``value`` has the shape of a lazy record reference, ``"package.module:Class"``."""
    module, colon, name = value.partition(":")
    return bool(colon) and name.isidentifier() and all(p.isidentifier() for p in module.split("."))


def _record_declaration(_info: Any, _attribute: Any, value: object) -> None:
    """Refuse a ``record`` that is neither ``None``, a record class nor a lazy reference
    (a wrong *shape* fails the plugin's load, where the manager names the plugin)."""
    if value is None:
        return
    if isinstance(value, str):
        if not is_record_reference(value):
            raise ValueError(f"PluginInfo.record {value!r} is not a lazy reference "
                             "'package.module:Class'")
        return
    from vzcore.records import PluginRecord

    if not (isinstance(value, type) and issubclass(value, PluginRecord)):
        raise TypeError(f"PluginInfo.record {value!r} is not a vzcore.records.PluginRecord "
                        "subclass nor a 'package.module:Class' reference")


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What a plugin provides, returned by its ``vz_plugin_info`` hook.

    :ivar subsystem: the subsystem it implements (``isolation``, ``network``, ...) or a new
        name; only one plugin per subsystem is active on a host.
    :ivar summary: one line for ``vzctl plugins``.
    :ivar variants: variants a CT can choose inside the subsystem, by config key:
        ``{"VE_LAYOUT": ("simfs",)}``.  The engine refuses a CT naming a variant that no
        active plugin offers.
    :ivar child_modules: the one way to name the modules that its hooks running inside
        the CT use (``vz_setup_child``, ``vz_switch_root``, ``vz_finalize_child``,
        ``vz_enter``).  The engine imports them before the start forks the CT's init and
        before a process joins the CT, so those hooks find them loaded: importing there
        would lengthen every start, and inside the CT the host's files are out of reach.
        The plugin module itself imports none of them at module level (every command
        loads it); its hooks import them where they use them, which costs nothing then.
    :ivar record: the frozen attrs class (a :class:`vzcore.records.PluginRecord`) of what
        the plugin keeps in a running CT's state file, ``run.record``, or a lazy reference
        to it, ``"package.module:Class"``, imported the first time a record of the plugin
        is read or written (:meth:`record_class`), or with the child modules when the
        plugin implements a hook of :data:`IN_CT_HOOKS`; ``None`` when it keeps nothing.
        Prefer the reference: the plugin module is loaded by every command, the record
        module only by those that touch the plugin's record (a CT without network settings
        never imports the network plugin's).  Keep the record in a module of its own that
        imports only attrs: every command that reads a state file loads it.
    """

    subsystem: str = attrs.field(validator=attrs.validators.matches_re(SUBSYSTEM_PATTERN))
    summary: str
    variants: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    child_modules: tuple[str, ...] = ()
    record: type[PluginRecord] | str | None = attrs.field(default=None,
                                                         validator=_record_declaration)

    def record_class(self, plugin: str) -> type[PluginRecord] | None:
        """The record class: :attr:`record`, its reference imported on the first call (and
        kept), or ``None``.  A reference that does not name a
        :class:`~vzcore.records.PluginRecord` subclass raises :class:`VzError` naming
        ``plugin`` (the plugin's name, for the message)."""
        if self.record is None or isinstance(self.record, type):
            return self.record
        cls = _RESOLVED.get(self.record)
        if cls is None:
            cls = _RESOLVED[self.record] = _resolve(self.record, plugin)
        return cls


def _resolve(reference: str, plugin: str) -> type[PluginRecord]:
    """The class that ``reference`` (``"package.module:Class"``) names."""
    from vzcore.records import PluginRecord

    module_name, _, class_name = reference.partition(":")
    fix = f"correct it in the plugin's vz_plugin_info or reinstall the {plugin} plugin"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise VzError(f"the {plugin} plugin's PluginInfo.record {reference!r} does not import "
                      f"({type(exc).__name__}: {exc}); {fix}") from exc
    value = getattr(module, class_name, None)
    if value is None:
        raise VzError(f"the {plugin} plugin's PluginInfo.record {reference!r}: module "
                      f"{module_name} has no {class_name}; {fix}")
    if not (isinstance(value, type) and issubclass(value, PluginRecord)):
        raise VzError(f"the {plugin} plugin's PluginInfo.record {reference!r} is not a "
                      f"vzcore.records.PluginRecord subclass; {fix}")
    return value
