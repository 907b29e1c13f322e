"""What the network plugin keeps in a running CT's state file (``run.record``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from vzcore.records import PluginRecord
from vzcore_network.netif import ResolvedNetif


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class Venet:
    """The CT's venet: its host end and the addresses routed to it (``ADDR[/PREFIX]``)."""

    host: str
    addresses: tuple[str, ...] = attrs.field(converter=_strings)


def _venet(value: Venet | Mapping[str, Any] | None) -> Venet | None:
    return Venet(**value) if isinstance(value, Mapping) else value


def _netifs(values: Iterable[ResolvedNetif | Mapping[str, Any]]) -> tuple[ResolvedNetif, ...]:
    return tuple(ResolvedNetif(**v) if isinstance(v, Mapping) else v for v in values)


def _proxies(values: Iterable[Iterable[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((device, address) for device, address in values)


@attrs.frozen(kw_only=True)
class NetworkRecord(PluginRecord):
    """Every host-side object the CT's network uses; stop deletes by it.

    :ivar links: host ends of the CT's pairs (deleting one deletes its peer and routes).
    :ivar proxies: proxy neighbour entries, ``(device, address)``.
    :ivar venet: the venet pair and its addresses (``None``: the CT has no venet).
    :ivar veth: the veth interfaces as they were made.
    """

    VERSION: ClassVar[int] = 1

    links: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    proxies: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_proxies)
    venet: Venet | None = attrs.field(default=None, converter=_venet)
    veth: tuple[ResolvedNetif, ...] = attrs.field(default=(), converter=_netifs)

    @classmethod
    def upgrade(cls, version: int, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if version == 0:  # the previous release's dict had these keys, each optional
            return {name: data[name] for name in ("links", "proxies", "venet", "veth")
                    if data.get(name) is not None}
        return None
