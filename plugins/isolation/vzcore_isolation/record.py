"""What the isolation plugin keeps in a running CT's state file."""

from __future__ import annotations

import attrs

from vzcore.records import PluginRecord


@attrs.frozen
class IsolationRecord(PluginRecord):
    """The init the CT booted and what its boot needs from the host; recorded only for
    an init that boots a distribution (none: busybox, or any other init).

    :ivar init_kind: ``systemd``, ``sysvinit`` or ``busybox``
        (:mod:`vzcore_isolation.initkind`), detected when the start began: ``vzctl stop``
        talks to the init that was booted.
    :ivar host_dir: the host directory bound on the CT's /run/host (its ``notify``
        socket), removed at stop; ``None`` for an init that boots no distribution.
    """

    init_kind: str
    host_dir: str | None = None
