"""Which plugins must undo a CT's run: the ones named in its state file.

Teardown asks the plugins that *recorded* something, not the ones active now.  A recorded
plugin that is missing, disabled, no longer its subsystem's provider, or that cannot read
its own record is named with the way out; the verb refuses before any effect, so the
record (and what it names) stays for a later try.  ``vzctl stop --force`` instead cleans
what the core can (processes, cgroups, mounts) and drops those plugins' records, saying
what they had recorded.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from vzcore.container import Container
from vzcore.errors import RecordedPluginUnavailable, VzError
from vzcore.plugin.manager import ACTIVE, DISABLED, FAILED, NOT_SELECTED, Plugins
from vzcore.runtime import State

_SHOWN = 240
"""Characters of a record shown in a message (the beancounters one is long)."""


@attrs.frozen
class Unavailable:
    """A recorded plugin the engine cannot call, why, and how to get it back.

    :ivar plugin: its name (empty for the provider of the recorded layout, which is
        named by ``subject``).
    """

    plugin: str
    why: str
    fix: str
    left: str
    subject: str = ""

    def describe(self) -> str:
        return f"{self.subject or f'the {self.plugin} plugin'} {self.why}; it recorded {self.left}"


def _left(entry: dict[str, Any]) -> str:
    text = json.dumps(entry.get("record", {}), sort_keys=True)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "...}"


def _unavailable(plugins: Plugins, state: State, name: str) -> Unavailable | None:
    status = plugins.statuses.get(name)
    left = _left(state.records[name])
    if status is None:
        return Unavailable(name, "is not installed", f"reinstall the {name} plugin", left)
    if status.state == DISABLED:
        return Unavailable(name, "is disabled (DISABLED_PLUGINS in vz.conf)",
                           f"remove {name} from DISABLED_PLUGINS in vz.conf", left)
    if status.state == NOT_SELECTED:
        return Unavailable(name, f"is no longer its subsystem's provider ({status.reason})",
                           f"make {name} the provider again", left)
    if status.state == FAILED:
        return Unavailable(name, f"failed to load ({status.reason})", f"repair the {name} plugin",
                           left)
    if status.state != ACTIVE:
        return Unavailable(name, f"is {status.state} ({status.reason})",
                           f"make the {name} plugin active again", left)
    info = plugins.infos.get(name)
    try:
        state.record(name, info.record_class(name) if info else None)
    except VzError as exc:
        return Unavailable(name, f"cannot read its record ({exc})", f"reinstall the {name} plugin "
                           "version that started the CT", left)
    return None


def _layout_unavailable(plugins: Plugins, state: State) -> Unavailable | None:
    """The recorded layout's provider, when the start mounted the CT and none offers it."""
    layout = state.variants.get("VE_LAYOUT")
    if not state.mounted_by_start or layout is None:
        return None
    if layout in plugins.variant_offers("VE_LAYOUT"):
        return None
    return Unavailable("", "is not active", f"install or enable the plugin offering '{layout}'",
                       f"the CT's root mounted with layout '{layout}'",
                       subject=f"the plugin offering layout '{layout}' (VE_LAYOUT)")


def unavailable(plugins: Plugins, state: State) -> list[Unavailable]:
    """The recorded plugins that cannot undo what they recorded, by name."""
    found = [_unavailable(plugins, state, name) for name in sorted(state.records)]
    found.append(_layout_unavailable(plugins, state))
    return [u for u in found if u is not None]


def check(plugins: Plugins, ct: Container, state: State, *, verb: str,
          force: bool) -> list[Unavailable]:
    """Refuse ``verb`` (before any effect) while a recorded plugin cannot be called; with
    ``force``, return those plugins: their records are dropped after the core's cleanup."""
    missing = unavailable(plugins, state)
    if missing and not force:
        fixes = "; ".join(dict.fromkeys(u.fix for u in missing))
        raise RecordedPluginUnavailable(
            f"CT {ct.ctid}: {verb} refused: {'; '.join(u.describe() for u in missing)}. "
            f"To proceed: {fixes}, then run the command again; or 'vzctl stop --force "
            f"{ct.ctid}' to clean what the core can (processes, cgroups, mounts) and drop "
            "those records")
    return missing
