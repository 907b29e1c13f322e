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
    """The lxcfs files bound over the CT's own (they die with its mount namespace).

    :ivar mountpoint: where the shared lxcfs is mounted on the host.
    :ivar files: the files bound, relative to both the mount point and the CT's root
        (``proc/meminfo``); a restarted lxcfs is bound anew over these.
    """

    VERSION: ClassVar[int] = 1

    mountpoint: str
    files: tuple[str, ...] = attrs.field(default=(), converter=_paths)
