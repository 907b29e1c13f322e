"""How plugins declare themselves, and the order the engine runs their hooks in."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

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


def subsystem_rank(subsystem: str) -> tuple[int, str]:
    """Sort key putting ``subsystem`` in :data:`SUBSYSTEM_ORDER` (unknown ones last, by name)."""
    try:
        return (SUBSYSTEM_ORDER.index(subsystem), "")
    except ValueError:
        return (len(SUBSYSTEM_ORDER), subsystem)


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
        the plugin keeps in a running CT's state file, ``run.record``; ``None`` when it
        keeps nothing.  Keep it in a module of its own that imports only attrs: every
        command that reads a state file loads it.
    """

    subsystem: str = attrs.field(validator=attrs.validators.matches_re(SUBSYSTEM_PATTERN))
    summary: str
    variants: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    child_modules: tuple[str, ...] = ()
    record: type[PluginRecord] | None = None
