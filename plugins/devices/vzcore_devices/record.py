"""What the devices plugin keeps in a running CT's state file (``run.record``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from vzcore.records import PluginRecord


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class Node:
    """A device node made in the CT's /dev: ``/dev/NAME``, a ``c`` or ``b`` device with the
    host node's numbers and permission bits, granted ``access`` (``r``, ``w``, ``rw``)."""

    name: str
    kind: str
    major: int
    minor: int
    mode: int
    access: str

    def describe(self) -> str:
        return f"/dev/{self.name} ({self.kind} {self.major}:{self.minor})"


@attrs.frozen(kw_only=True)
class Netdev:
    """A host interface moved into the CT, and what it had on the host (restored when it
    comes back): its addresses (``ADDR/PREFIX``) and whether it was up."""

    name: str
    addresses: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    up: bool = False


def _nodes(values: Iterable[Node | Mapping[str, Any]]) -> tuple[Node, ...]:
    return tuple(v if isinstance(v, Node) else Node(**v) for v in values)


def _netdevs(values: Iterable[Netdev | Mapping[str, Any]]) -> tuple[Netdev, ...]:
    return tuple(v if isinstance(v, Netdev) else Netdev(**v) for v in values)


@attrs.frozen(kw_only=True)
class DevicesRecord(PluginRecord):
    """The rules enforced on the CT's group, the nodes in its /dev and its interfaces.

    :ivar rules: the rules in force (``c 1:3 rwm``), for the next live change's difference.
    :ivar program: the ID of the CT's BPF device program (cgroup v2), else ``None``.
    :ivar nodes: the granted nodes made in the CT's /dev (they go with its mount namespace).
    :ivar netdevs: host interfaces in the CT; stop moves them back.
    :ivar netns: a file the CT's network namespace is bind-mounted on, so that it outlives
        the CT's init until the interfaces are moved back (removed at stop).
    """

    VERSION: ClassVar[int] = 1

    rules: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    program: int | None = None
    nodes: tuple[Node, ...] = attrs.field(default=(), converter=_nodes)
    netdevs: tuple[Netdev, ...] = attrs.field(default=(), converter=_netdevs)
    netns: str | None = None
