"""venet addresses: the ``--ipadd``/``--ipdel`` grammar and ``IP_ADDRESS`` (pure; no I/O).

``IP_ADDRESS`` is a space-separated list of ``ADDR[/PREFIX]``, IPv4 or IPv6, as vzctl
writes it.  The prefix only matters inside the CT (the address's on-link prefix on
``venet0``); the host always routes exactly the address (/32, /128) to the CT.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@attrs.frozen
class CtAddress:
    """One CT address: the address and its prefix length inside the CT."""

    address: IPAddress
    prefixlen: int

    @property
    def version(self) -> int:
        return self.address.version

    @property
    def full_prefix(self) -> int:
        return self.address.max_prefixlen

    def __str__(self) -> str:
        if self.prefixlen == self.full_prefix:
            return str(self.address)
        return f"{self.address}/{self.prefixlen}"


def parse_address(text: str, *, link_layer: bool = False) -> CtAddress:
    """``ADDR[/PREFIX]`` (IPv4 also ``ADDR/NETMASK``); refuse what cannot be a CT's address
    (``link_layer``: on a veth, where IPv6 link-local addresses are the CT's too)."""
    text = text.strip()
    addr_text, slash, mask = text.partition("/")
    try:
        address = ipaddress.ip_address(addr_text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address (expected ADDR[/PREFIX])") from None
    prefixlen: int = address.max_prefixlen
    if slash:
        try:
            network = ipaddress.ip_network(f"{address}/{mask}", strict=False)
        except ValueError:
            raise ValueError(f"{text!r}: {mask!r} is not a prefix length "
                             f"(0-{address.max_prefixlen}) or netmask") from None
        prefixlen = network.prefixlen
    problem = _unusable(address)
    if problem and not (link_layer and address.version == 6 and address.is_link_local):
        raise ValueError(f"{text!r} is {problem}, which cannot be a CT's address")
    return CtAddress(address, prefixlen)


def _unusable(address: IPAddress) -> str:
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.version == 4 and int(address) == 0xFFFFFFFF:
        return "the broadcast address"
    if address.version == 6 and address.is_link_local:
        return "an IPv6 link-local address (venet has no link layer)"
    return ""


class AddressType:
    """The value grammar of ``--ipadd``: one ``ADDR[/PREFIX]``."""

    metavar = "ADDR[/PREFIX]"

    def parse(self, text: str) -> CtAddress:
        return parse_address(text)

    def to_conf(self, value: CtAddress) -> str:
        return str(value)


ALL = "all"


class AddressOrAll:
    """The value grammar of ``--ipdel``: ``ADDR`` or ``all``."""

    metavar = "ADDR|all"

    def parse(self, text: str) -> CtAddress | str:
        if text.strip() == ALL:
            return ALL
        return parse_address(text)

    def to_conf(self, value: CtAddress | str) -> str:
        return str(value)


def parse_list(text: str | None) -> list[CtAddress]:
    """``IP_ADDRESS`` text -> addresses (a malformed word raises ValueError naming it)."""
    return [parse_address(word) for word in (text or "").split()]


def render(addresses: Sequence[CtAddress]) -> str | None:
    return " ".join(str(a) for a in addresses) or None


def merge_add(old: str | None, values: Sequence[CtAddress]) -> str | None:
    """``--ipadd``: append new addresses; giving a present address again updates its prefix."""
    current = parse_list(old)
    for new in values:
        current = [a for a in current if a.address != new.address] + [new]
    return render(current)


def merge_del(old: str | None, values: Sequence[CtAddress | str]) -> str | None:
    """``--ipdel``: remove the addresses given (the prefix is ignored), or ``all``."""
    current = parse_list(old)
    for value in values:
        if value == ALL:
            current = []
            continue
        assert isinstance(value, CtAddress)
        if not any(a.address == value.address for a in current):
            raise ValueError(f"{value.address} is not an address of the CT (IP_ADDRESS)")
        current = [a for a in current if a.address != value.address]
    return render(current)


def host_prefix(address: CtAddress) -> str:
    """The host route's destination: the address alone."""
    return f"{address.address}/{address.full_prefix}"
