"""What the cpu plugin keeps in a running CT's state file (``run.record``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from vzcore.records import PluginRecord

if TYPE_CHECKING:
    from vzcore_cpu.mapping import CpuSettings


@attrs.frozen(kw_only=True)
class CpuRecord(PluginRecord):
    """The CT's CPU view directory (removed at stop) and the settings applied to it.

    :ivar view: the directory of the CT's /proc/cpuinfo and CPU list files.
    :ivar units: cpuunits applied; :ivar limit: cpulimit (percent of one CPU);
    :ivar cpus: CPU count (0: all); :ivar mask: CPU list (``None``: all).
    """

    VERSION: ClassVar[int] = 1

    view: str
    units: int
    limit: int
    cpus: int
    mask: str | None = None

    @classmethod
    def of(cls, view: str, settings: CpuSettings) -> CpuRecord:
        return cls(view=view, **settings.to_record())

    def settings(self) -> CpuSettings:
        """The applied settings as numbers."""
        from vzcore_cpu.mapping import CpuSettings

        return CpuSettings.from_record(self.to_json())

    @classmethod
    def upgrade(cls, version: int, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if version == 0 and isinstance(data.get("applied"), Mapping):
            # previous release: {"view": DIR, "applied": {"units": .., "limit": .., ...}}
            return {"view": data.get("view"), **data["applied"]}
        return None
