"""What the notify plugin keeps in a running CT's state file (``run.record``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs

from vzcore.records import PluginRecord


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class NotifyRecord(PluginRecord):
    """The CT's calls are intercepted and answered by the installation's supervisor.

    :ivar directory: the supervisor's directory on the host (record, lock, log, control
        socket).
    :ivar calls: the intercepted system calls (``statfs``, ``fstatfs``, ``sysinfo``).
    """

    VERSION: ClassVar[int] = 1

    directory: str
    calls: tuple[str, ...] = attrs.field(default=(), converter=_names)
