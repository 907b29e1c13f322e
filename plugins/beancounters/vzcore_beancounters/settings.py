"""Where a CT's beancounter settings come from, and the host facts the mapping needs.

A stopped CT's settings are its config; a running CT's are what was applied to it (kept
in the plugin's part of the state file), since ``vzctl set`` without ``--save`` changes a
running CT and not its config.  The record keeps both the config text that was applied
(so a later live change of one key starts from what runs, not from the file) and the
resulting pairs.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from vzcore_beancounters.limits import Limits, from_config
from vzcore_beancounters.resources import RESOURCES

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore_beancounters.record import BeancountersRecord


CONFIG_KEYS = (*(key for r in RESOURCES for key in (r.key, *r.aliases)), "VM_OVERCOMMIT")
"""Every config key the settings are computed from."""


@cache
def host_pages() -> int:
    """The host's RAM in pages (oomguarpages' default barrier is 75% of it)."""
    return int(os.sysconf("SC_PHYS_PAGES"))


@cache
def nr_open() -> int:
    """``fs.nr_open``: the highest RLIMIT_NOFILE the kernel accepts."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024 * 1024


def host_swap() -> bool:
    """Whether any swap device or file is active on the host."""
    try:
        with open("/proc/swaps") as f:
            return len(f.read().splitlines()) > 1
    except OSError:
        return True


def config_limits(ct: Container, changes: ChangeSet | None = None) -> Limits:
    """The CT's settings from its config (over vz.conf), with ``changes`` applied."""

    def get(key: str) -> str | None:
        if changes is not None and key in changes:
            return changes[key].new
        return ct.get(key)

    return from_config(ct.ctid, get, host_pages())


def config_text(ct: Container) -> dict[str, str | None]:
    """The CT's config text of every key in :data:`CONFIG_KEYS` (to record at start)."""
    return {key: ct.get(key) for key in CONFIG_KEYS}


def running_config(ct: Container, record: BeancountersRecord | None,
                   changes: ChangeSet) -> tuple[Limits, dict[str, str | None]]:
    """A running CT's settings after ``changes``: the recorded (applied) config text with
    the changed keys replaced, and that text to record next."""
    text = dict(record.config) if record is not None and record.config else config_text(ct)
    for key in CONFIG_KEYS:
        if key in changes:
            text[key] = changes[key].new
    return from_config(ct.ctid, text.get, host_pages()), text


def applied_limits(ct: Container, record: BeancountersRecord | None) -> Limits:
    """A running CT's settings: those recorded at start or by the last live change (its
    config, for a CT started before this plugin recorded anything)."""
    return Limits.from_json(record.limits) if record is not None and record.limits else config_limits(ct)
