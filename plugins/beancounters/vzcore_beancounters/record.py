"""What the beancounters plugin keeps in a running CT's state file (``run.record``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from vzcore.records import PluginRecord


def _pairs(data: Mapping[str, Iterable[int]]) -> dict[str, tuple[int, int]]:
    return {name: (int(a), int(b)) for name, (a, b) in dict(data).items()}


def _texts(data: Mapping[str, str | None]) -> dict[str, str | None]:
    return dict(data)


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(values))


@attrs.frozen(kw_only=True)
class BeancountersRecord(PluginRecord):
    """The settings applied to a running CT (a live change replaces them).

    :ivar limits: barrier and limit per beancounter (:meth:`Limits.to_json
        <vzcore_beancounters.limits.Limits.to_json>`); empty: the CT's config applies.
    :ivar config: the config text they were computed from, by key (``vzctl set`` changes
        it key by key).
    :ivar rlimits: per-process limits (soft, hard) by ``resource`` name, which a process
        joining the CT gets (``vz_enter`` runs where the plugin cannot be imported).
    :ivar view: where the CT sees its ``/proc/user_beancounters`` (``None``: no FUSE).
    :ivar unenforced: beancounters the kernel does not enforce on this host.
    """

    VERSION: ClassVar[int] = 1

    limits: Mapping[str, tuple[int, int]] = attrs.field(factory=dict, converter=_pairs)
    config: Mapping[str, str | None] = attrs.field(factory=dict, converter=_texts)
    rlimits: Mapping[str, tuple[int, int]] = attrs.field(factory=dict, converter=_pairs)
    view: str | None = None
    unenforced: tuple[str, ...] = attrs.field(default=(), converter=_names)

    @classmethod
    def upgrade(cls, version: int, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if version == 0:  # the previous release's dict had these keys, each optional
            names = ("limits", "config", "rlimits", "view", "unenforced")
            return {name: data[name] for name in names if data.get(name) is not None}
        return None
