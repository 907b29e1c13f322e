"""What the lxcfs plugin keeps in a running CT's state file (``run.record``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

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
    :ivar daemon_pid: the daemon the start binds from, and
    :ivar mntns: its mount namespace (``mnt:[INODE]``), checked on the host with a pidfd:
        the CT's init joins that namespace only (a PID may be reused meanwhile).
    """

    VERSION: ClassVar[int] = 2

    directory: str
    files: tuple[str, ...] = attrs.field(default=(), converter=_paths)
    daemon_pid: int = 0
    mntns: str = ""

    @classmethod
    def upgrade(cls, version: int, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Version 1 had no daemon identity (only a start needs it)."""
        return dict(data) if version == 1 else None

    @property
    def mountpoint(self) -> str:
        """Where the daemon's file system is mounted."""
        return f"{self.directory}/mnt"
