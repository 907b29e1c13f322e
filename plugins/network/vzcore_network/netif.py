"""veth interfaces: ``NETIF``, ``--netif_add/--netif_del`` and ``--ifname --mac ...`` (pure).

``NETIF`` is vzctl's format: interfaces separated by ``;``, each a comma list of
``key=value`` (``ifname=eth0,bridge=vmbr0,mac=...,host_ifname=veth101.0,host_mac=...``).
Only what the user gave is stored; what was not given is derived from the CT ID and the
interface name every time (:func:`resolve`), so it is the same at every start:

* ``host_ifname``: ``veth<CTID>.<N>`` with N the trailing digits of the CT's name (vzctl's
  rule), or a hashed ``vz...`` name when that is longer than Linux allows or the name
  has no digits;
* MACs: locally administered, from a checksum of the CT ID and the interface name: the CT end
  ``02:..``, the host end ``FE:..`` (a high address, so that a Linux bridge does not take
  a CT's host end's MAC as its own).

Two keys say what the host end lets through (:mod:`vzcore_network.vethfilter`):
``mac_filter=on|off`` (vzctl's; ``on`` when not given) and ``ip=ADDR ADDR...`` (this
project's: the addresses the CT configures on the interface, space-separated; without
it, source addresses are not checked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import attrs

IFNAMSIZ = 15
"""The longest interface name Linux accepts (IFNAMSIZ - 1)."""

KEYS = ("ifname", "bridge", "mac", "host_ifname", "host_mac", "mac_filter", "ip")
"""Keys in the order vzctl writes them."""

VENET_HOST_PATTERN = re.compile(r"venet\d+")
"""Host ends of venet pairs (``venet<CTID>``): reserved, a veth may not use such a name."""

_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_IFNAME = re.compile(r"[^\s/:,;=]{1,15}")
ON_OFF = ("on", "off")


def check_ifname(name: str, what: str = "interface name") -> str:
    """A valid Linux interface name (at most 15 characters, no '/', ':' or spaces)."""
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{name!r} is not a valid {what} (1-{IFNAMSIZ} characters, "
                         "no spaces, '/', ':', ',', ';' or '=')")
    return name


def check_mac(text: str, what: str = "MAC address") -> str:
    """``XX:XX:XX:XX:XX:XX``, a unicast address that is not all zeros; returned in capitals."""
    if not _MAC.fullmatch(text):
        raise ValueError(f"{text!r} is not a {what} (expected XX:XX:XX:XX:XX:XX)")
    raw = bytes.fromhex(text.replace(":", ""))
    if raw[0] & 1:
        raise ValueError(f"{text} is a multicast address; a {what} must be unicast")
    if not any(raw):
        raise ValueError(f"{text} is all zeros; give a real {what}")
    return text.upper()


@attrs.frozen
class Netif:
    """One veth interface as configured (``None``: not given, derived at start)."""

    ifname: str
    mac: str | None = None
    host_ifname: str | None = None
    host_mac: str | None = None
    bridge: str | None = None
    mac_filter: str | None = None
    ip: str | None = None
    """The CT's addresses on this interface, space-separated (``ADDR[/PREFIX]``)."""
    extra: tuple[tuple[str, str], ...] = ()
    """Keys of other vzctl versions (``gw``, ``network``...), kept as they were."""

    def render(self) -> str:
        values = {"ifname": self.ifname, "bridge": self.bridge, "mac": self.mac,
                  "host_ifname": self.host_ifname, "host_mac": self.host_mac,
                  "mac_filter": self.mac_filter, "ip": self.ip}
        parts = [f"{key}={values[key]}" for key in KEYS if values[key]]
        parts += [f"{key}={value}" for key, value in self.extra]
        return ",".join(parts)


def check_on_off(text: str, what: str) -> str:
    if text not in ON_OFF:
        raise ValueError(f"{what}={text!r}: expected on or off")
    return text


def parse_ips(words: Sequence[str]) -> tuple[str, ...]:
    """The ``ip=`` addresses (``none`` alone: no list), each checked; refused twice."""
    from vzcore_network.addresses import parse_address

    if list(words) == ["none"]:
        return ()
    result: list[str] = []
    for word in words:
        address = parse_address(word, link_layer=True)
        if str(address.address) in (a.split("/")[0] for a in result):
            raise ValueError(f"ip= lists {address.address} twice")
        result.append(str(address))
    return tuple(result)


def render_ips(addresses: Sequence[str]) -> str | None:
    return " ".join(addresses) or None


def parse_netif_conf(text: str | None) -> list[Netif]:
    """``NETIF`` text -> interfaces; malformed text raises ValueError saying where."""
    result: list[Netif] = []
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        fields: dict[str, str] = {}
        extra: list[tuple[str, str]] = []
        for part in item.split(","):
            key, eq, value = part.strip().partition("=")
            if not eq:
                raise ValueError(f"{part!r} in {item!r} is not key=value")
            if key in KEYS:
                fields[key] = value
            else:
                extra.append((key, value))
        if "ifname" not in fields:
            raise ValueError(f"{item!r} has no ifname=")
        check_ifname(fields["ifname"])
        for key in ("mac", "host_mac"):
            if key in fields:
                check_mac(fields[key], key)
        for key in ("host_ifname", "bridge"):
            if key in fields:
                check_ifname(fields[key], key)
        if "mac_filter" in fields:
            check_on_off(fields["mac_filter"], "mac_filter")
        if "ip" in fields:
            fields["ip"] = render_ips(parse_ips(fields["ip"].split())) or ""
        result.append(Netif(extra=tuple(extra), **fields))
    return result


def render_netif_conf(netifs: Sequence[Netif]) -> str | None:
    return ";".join(n.render() for n in netifs) or None


class NetifSpecType:
    """The grammar of ``--netif_add ifname[,mac,host_ifname,host_mac,bridge]``.

    (The grammars here are plain classes: an attrs class costs about a millisecond to
    create, and every ``vzctl start`` imports this module.)
    """

    metavar = "IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE,MAC_FILTER]"

    def parse(self, text: str) -> Netif:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) > 6:
            raise ValueError(f"{text!r}: expected at most "
                             "ifname,mac,host_ifname,host_mac,bridge,mac_filter")
        parts += [""] * (6 - len(parts))
        ifname, mac, host_ifname, host_mac, bridge, mac_filter = parts
        check_ifname(ifname)
        return Netif(
            ifname=ifname,
            mac=check_mac(mac) if mac else None,
            host_ifname=check_ifname(host_ifname, "host interface name") if host_ifname else None,
            host_mac=check_mac(host_mac, "host MAC address") if host_mac else None,
            bridge=check_ifname(bridge, "bridge name") if bridge else None,
            mac_filter=check_on_off(mac_filter, "mac_filter") if mac_filter else None,
        )

    def to_conf(self, value: Netif) -> str:
        return value.render()


class IfnameOrAll:
    """The grammar of ``--netif_del ifname|all``."""

    metavar = "IFNAME|all"

    def parse(self, text: str) -> str:
        return text if text == "all" else check_ifname(text)

    def to_conf(self, value: str) -> str:
        return value


def merge_add(old: str | None, values: Sequence[Netif]) -> str | None:
    """``--netif_add``: a new interface; an ifname already configured is refused."""
    current = parse_netif_conf(old)
    for new in values:
        if any(n.ifname == new.ifname for n in current):
            raise ValueError(f"interface {new.ifname} is already configured (NETIF); change it "
                             f"with --ifname {new.ifname} --mac ... or remove it with "
                             f"--netif_del {new.ifname}")
        current.append(new)
    return render_netif_conf(current)


def merge_del(old: str | None, values: Sequence[str]) -> str | None:
    """``--netif_del ifname|all``."""
    current = parse_netif_conf(old)
    for name in values:
        if name == "all":
            current = []
            continue
        if not any(n.ifname == name for n in current):
            raise ValueError(f"the CT has no veth interface {name} (NETIF)")
        current = [n for n in current if n.ifname != name]
    return render_netif_conf(current)


CHANGEABLE = ("mac", "host_ifname", "host_mac", "bridge", "mac_filter", "ifaddr")
"""Options that change the interface ``--ifname`` names."""


def merge_ifname(old: str | None, values: Sequence[str],
                 others: Mapping[str, Sequence[str]]) -> str | None:
    """``--ifname NAME`` with ``--mac/--host_ifname/--host_mac/--bridge``: change NAME."""
    name = values[-1]
    current = parse_netif_conf(old)
    found = [n for n in current if n.ifname == name]
    if not found:
        raise ValueError(f"the CT has no veth interface {name}; add it with --netif_add {name}")
    changes: dict[str, str | None] = {key: others[key][-1] for key in CHANGEABLE
                                      if others.get(key) and key != "ifaddr"}
    if others.get("ifaddr"):
        changes["ip"] = render_ips(parse_ips(others["ifaddr"]))
    if not changes:
        raise ValueError(f"--ifname {name} changes nothing; add --mac, --host_ifname, "
                         "--host_mac, --bridge, --mac_filter or --ifaddr")
    updated = attrs.evolve(found[0], **changes)  # type: ignore[arg-type]
    return render_netif_conf([updated if n.ifname == name else n for n in current])


def merge_needs_ifname(option: str) -> Callable[..., str | None]:
    """The merge of ``--mac`` and friends: the work is done by ``--ifname``'s merge."""

    def merge(old: str | None, _values: Sequence[str], others: Mapping[str, Sequence[str]]) -> str | None:
        if not others.get("ifname"):
            raise ValueError(f"--{option} needs --ifname NAME to say which veth interface")
        return old

    return merge


# -- values derived from the CT ID ------------------------------------------------------


def _digest(ctid: int, ifname: str, role: str) -> bytes:
    """Eight bytes that depend on the CT ID, the interface and the role.  Not a security
    measure (the values are visible anyway); zlib's CRC because hashlib costs 10 ms to
    import on every start of a CT with a veth."""
    import zlib

    key = f"vzcore:{ctid}:{ifname}:{role}".encode()
    return b"".join(zlib.crc32(key, salt).to_bytes(4, "big") for salt in (0x5A5A5A5A, 0x0F1E2D3C))


def generated_mac(ctid: int, ifname: str, role: str) -> str:
    """A stable MAC for the CT end (``role="ct"``, ``02:..``) or the host end (``FE:..``)."""
    first = 0x02 if role == "ct" else 0xFE
    raw = bytes([first]) + _digest(ctid, ifname, role)[:5]
    return ":".join(f"{b:02X}" for b in raw)


def default_host_ifname(ctid: int, ifname: str) -> str:
    """vzctl's ``veth<CTID>.<N>``, or a hashed name when that does not fit or has no N."""
    digits = re.search(r"(\d+)$", ifname)
    if digits:
        name = f"veth{ctid}.{int(digits.group(1))}"
        if len(name) <= IFNAMSIZ:
            return name
    return "vz" + _digest(ctid, ifname, "host_ifname").hex()[:IFNAMSIZ - 2]


@attrs.frozen
class ResolvedNetif:
    """An interface with every value filled in, as it is made at start."""

    ifname: str
    mac: str
    host_ifname: str
    host_mac: str
    bridge: str | None
    mac_filter: bool = True
    addresses: tuple[str, ...] | None = attrs.field(
        default=None, converter=lambda v: None if v is None else tuple(v))
    """What the host end's filter lets the CT use as source addresses (None: any)."""


def resolve(ctid: int, netif: Netif) -> ResolvedNetif:
    return ResolvedNetif(
        ifname=netif.ifname,
        mac=netif.mac or generated_mac(ctid, netif.ifname, "ct"),
        host_ifname=netif.host_ifname or default_host_ifname(ctid, netif.ifname),
        host_mac=netif.host_mac or generated_mac(ctid, netif.ifname, "host"),
        bridge=netif.bridge,
        mac_filter=netif.mac_filter != "off",
        addresses=parse_ips(netif.ip.split()) if netif.ip else None,
    )


def check_host_names(ctid: int, netifs: Sequence[Netif]) -> list[ResolvedNetif]:
    """Resolve ``netifs``; refuse two with one host name, or one that takes a venet name."""
    resolved = [resolve(ctid, n) for n in netifs]
    seen: dict[str, str] = {}
    for r in resolved:
        if VENET_HOST_PATTERN.fullmatch(r.host_ifname):
            raise ValueError(f"host interface name {r.host_ifname} (for {r.ifname}) is reserved "
                             "for venet; choose another with --host_ifname")
        if r.host_ifname in seen:
            raise ValueError(f"interfaces {seen[r.host_ifname]} and {r.ifname} would both be "
                             f"{r.host_ifname} on the host; give one --host_ifname")
        seen[r.host_ifname] = r.ifname
    return resolved


class IfnameType:
    """An interface name option (``--ifname``, ``--host_ifname``, ``--bridge``)."""

    metavar = "NAME"

    def __init__(self, what: str = "interface name") -> None:
        self.what = what

    def parse(self, text: str) -> str:
        return check_ifname(text.strip(), self.what)

    def to_conf(self, value: str) -> str:
        return value


class OnOffType:
    """``--mac_filter on|off``."""

    metavar = "on|off"

    def parse(self, text: str) -> str:
        return check_on_off(text.strip(), "--mac_filter")

    def to_conf(self, value: str) -> str:
        return value


class IfaddrType:
    """``--ifaddr ADDR[/PREFIX]|none``: an address the CT uses on the ``--ifname`` interface."""

    metavar = "ADDR[/PREFIX]|none"

    def parse(self, text: str) -> str:
        from vzcore_network.addresses import parse_address

        text = text.strip()
        return text if text == "none" else str(parse_address(text, link_layer=True))

    def to_conf(self, value: str) -> str:
        return value


class MacType:
    """A MAC address option (``--mac``, ``--host_mac``)."""

    metavar = "XX:XX:XX:XX:XX:XX"

    def __init__(self, what: str = "MAC address") -> None:
        self.what = what

    def parse(self, text: str) -> str:
        return check_mac(text.strip(), self.what)

    def to_conf(self, value: str) -> str:
        return value
