"""The grammar of DEVNODES, DEVICES and NETDEV, and how ``vzctl set`` options change them
(pure: no file is read here).

``--devnodes NAME:r|w|rw|q|none``
    a host node ``/dev/NAME`` (``loop3``, ``net/tun``); ``none`` revokes it.  Config text:
    ``DEVNODES="loop3:rw net/tun:rw"``.
``--devices b|c:MAJOR:MINOR|all:r|w|rw|none``
    access by number (``MINOR`` may be ``all``: every minor of ``MAJOR``), no node is made;
    ``none`` revokes.  Config text: ``DEVICES="c:10:200:rw b:7:all:r"``.
``--netdev_add NAME`` / ``--netdev_del NAME``
    host network interfaces moved into the CT.  Config text: ``NETDEV="eth1 eth2"``.

OpenVZ's access letters: ``r`` read, ``w`` write, ``rw`` both, ``q`` the CT's quota device
(vzcore grants it as ``rw``: there is no device-bound quota to attach it to), ``none``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from vzcore.linux.devnodes import RESERVED_NAMES

ACCESS = {"r": "r", "w": "w", "rw": "rw", "q": "rw", "none": ""}
"""Option letters -> the access granted (subset of ``rw``)."""

_NODE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,15}$")
MAX_MAJOR = (1 << 12) - 1
MAX_MINOR = (1 << 20) - 1

RESERVED = RESERVED_NAMES
"""The first path parts of /dev that every CT has already (isolation makes them)."""


@attrs.frozen
class Devnode:
    """``--devnodes NAME:ACCESS``: ``access`` ``""`` is ``none`` (revoke)."""

    name: str
    letters: str

    @property
    def access(self) -> str:
        return ACCESS[self.letters]

    def to_conf(self) -> str:
        return f"{self.name}:{self.letters}"


@attrs.frozen
class Device:
    """``--devices TYPE:MAJOR:MINOR:ACCESS``; ``minor`` ``None`` is ``all``."""

    kind: str
    major: int
    minor: int | None
    letters: str

    @property
    def access(self) -> str:
        return ACCESS[self.letters]

    @property
    def key(self) -> tuple[str, int, int | None]:
        return (self.kind, self.major, self.minor)

    def to_conf(self) -> str:
        minor = "all" if self.minor is None else str(self.minor)
        return f"{self.kind}:{self.major}:{minor}:{self.letters}"


def parse_devnode(text: str) -> Devnode:
    """``loop3:rw`` -> :class:`Devnode`; raise ValueError saying what is accepted."""
    name, sep, letters = text.strip().rpartition(":")
    if not sep or letters not in ACCESS:
        raise ValueError(f"{text!r} is not NAME:r|w|rw|q|none (a node below /dev, as in "
                         "loop3:rw or net/tun:rw)")
    if name.startswith("/dev/"):
        name = name[len("/dev/"):]
    if not _NODE_NAME.match(name) or any(part in (".", "..") for part in name.split("/")):
        raise ValueError(f"{name!r} is not a device name below /dev (letters, digits, _.+- and "
                         "/ between parts, as in loop3 or net/tun)")
    if name.split("/")[0] in RESERVED:
        raise ValueError(f"/dev/{name} is one of the nodes every CT has already; it cannot be "
                         "granted or revoked")
    return Devnode(name, letters)


def parse_device(text: str) -> Device:
    """``c:10:200:rw`` or ``b:7:all:r`` -> :class:`Device`; raise ValueError."""
    parts = text.strip().split(":")
    usage = (f"{text!r} is not b|c:MAJOR:MINOR|all:r|w|rw|none (as in c:10:200:rw, or "
             "b:7:all:r for every minor of major 7)")
    if len(parts) != 4 or parts[0] not in ("b", "c") or parts[3] not in ACCESS or \
            parts[3] == "q":
        raise ValueError(usage)
    kind, major_text, minor_text, letters = parts
    if not major_text.isdigit() or not (minor_text.isdigit() or minor_text == "all"):
        raise ValueError(usage)
    major = int(major_text)
    minor = None if minor_text == "all" else int(minor_text)
    if major > MAX_MAJOR or (minor is not None and minor > MAX_MINOR):
        raise ValueError(f"{text!r}: a major number is at most {MAX_MAJOR}, a minor at most "
                         f"{MAX_MINOR}")
    return Device(kind, major, minor, letters)


def parse_ifname(text: str) -> str:
    """A host network interface name; raise ValueError."""
    name = text.strip()
    if not _IFNAME.match(name) or name in (".", ".."):
        raise ValueError(f"{text!r} is not a network interface name (1 to 15 letters, digits "
                         "or _.:+-)")
    if name == "lo":
        raise ValueError("lo is the host's loopback device: it cannot be moved into a CT")
    return name


# -- config text ---------------------------------------------------------------------------


def devnodes_of(text: str | None) -> list[Devnode]:
    """DEVNODES text -> grants (``none`` entries are dropped; the last of a name wins)."""
    found: dict[str, Devnode] = {}
    for word in (text or "").split():
        node = parse_devnode(word)
        found.pop(node.name, None)
        found[node.name] = node
    return [n for n in found.values() if n.access]


def devices_of(text: str | None) -> list[Device]:
    """DEVICES text -> grants (``none`` entries dropped; the last of a key wins)."""
    found: dict[tuple[str, int, int | None], Device] = {}
    for word in (text or "").split():
        device = parse_device(word)
        found.pop(device.key, None)
        found[device.key] = device
    return [d for d in found.values() if d.access]


def netdevs_of(text: str | None) -> list[str]:
    """NETDEV text -> interface names, in order, without repeats."""
    names: list[str] = []
    for word in (text or "").split():
        name = parse_ifname(word)
        if name not in names:
            names.append(name)
    return names


def _render(words: Sequence[str]) -> str | None:
    return " ".join(words) or None


# -- vzctl set merges ----------------------------------------------------------------------


def merge_devnodes(old: str | None, values: Sequence[Devnode]) -> str | None:
    """``--devnodes``: set each name's access; ``none`` removes the name."""
    current = {n.name: n for n in devnodes_of(old)}
    for node in values:
        current.pop(node.name, None)
        if node.access:
            current[node.name] = node
    return _render([n.to_conf() for n in current.values()])


def merge_devices(old: str | None, values: Sequence[Device]) -> str | None:
    """``--devices``: set each device's access; ``none`` removes it."""
    current = {d.key: d for d in devices_of(old)}
    for device in values:
        current.pop(device.key, None)
        if device.access:
            current[device.key] = device
    return _render([d.to_conf() for d in current.values()])


def merge_netdev_add(old: str | None, values: Sequence[str]) -> str | None:
    """``--netdev_add``: append interfaces (one given twice is kept once)."""
    names = netdevs_of(old)
    names += [n for n in values if n not in names]
    return _render(names)


def merge_netdev_del(old: str | None, values: Sequence[str]) -> str | None:
    """``--netdev_del``: remove interfaces; one the CT does not have is refused."""
    names = netdevs_of(old)
    for name in values:
        if name not in names:
            raise ValueError(f"{name} is not an interface of the CT (NETDEV)")
        names.remove(name)
    return _render(names)


# -- value types for vzcore.params ---------------------------------------------------------


class DevnodeType:
    metavar = "NAME:r|w|rw|q|none"

    def parse(self, text: str) -> Devnode:
        return parse_devnode(text)

    def to_conf(self, value: Devnode) -> str:
        return value.to_conf()


class DeviceType:
    metavar = "b|c:MAJOR:MINOR|all:r|w|rw|none"

    def parse(self, text: str) -> Device:
        return parse_device(text)

    def to_conf(self, value: Device) -> str:
        return value.to_conf()


class IfnameType:
    metavar = "NAME"

    def parse(self, text: str) -> str:
        return parse_ifname(text)

    def to_conf(self, value: str) -> str:
        return value
