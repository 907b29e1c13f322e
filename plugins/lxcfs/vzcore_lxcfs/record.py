"""What the lxcfs plugin keeps in a running CT's state file (``run.record``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs

from vzcore.records import PluginRecord


def _paths(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class LxcfsRecord(PluginRecord):
    """The CT uses the shared lxcfs; its files are bound over the CT's own (the binds die
    with the CT's mount namespace).

    :ivar directory: the daemon's directory on the host (mount point ``mnt``, pid files,
        log, lock), removed by the last CT's stop.
    :ivar files: the files to bind, relative to both the mount point and the CT's root
        (``proc/meminfo``); a restarted lxcfs is bound anew over these.
    """

    VERSION: ClassVar[int] = 1

    directory: str
    files: tuple[str, ...] = attrs.field(default=(), converter=_paths)

    @property
    def mountpoint(self) -> str:
        """Where the daemon's file system is mounted."""
        return f"{self.directory}/mnt"
