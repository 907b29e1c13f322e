"""Making venet addresses known on the host's LAN: proxy ARP/NDP and announcements.

``NEIGHBOUR_DEVS`` (vz.conf) names the host devices that answer ARP/NDP for CT addresses
(a proxy neighbour entry per address and device) and that send an unsolicited ARP /
neighbour advertisement when an address appears, as vzctl does:

``detect`` (default)
    the device whose connected subnet holds the address, if any;
``all``
    every device that is up and does ARP, except loopback, bridge ports and CT host ends
    (this needs a dump of every link, so its cost grows with the number of devices);
``list:DEV [DEV...]``
    those devices;
``none``
    nowhere (tests and benchmarks use it; so do routed setups without a shared LAN).

IPv6 proxy entries work only with ``net.ipv6.conf.DEV.proxy_ndp=1``, which is set on the
devices that get one.  Answering ARP for a proxied address also needs forwarding on the
device (``net.ipv4.conf.DEV.forwarding``), which is the administrator's choice.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import attrs

from vzcore_network.netif import VENET_HOST_PATTERN

if TYPE_CHECKING:
    from vzcore_network.addresses import CtAddress
    from vzcore_network.rtnl import Rtnl

DEFAULT = "detect"
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80
IFF_UP = 0x1
ETH_P_ARP = 0x0806


@attrs.frozen
class NeighbourDevs:
    """A parsed ``NEIGHBOUR_DEVS``: ``mode`` is detect, all, list or none."""

    mode: str
    devices: tuple[str, ...] = ()


def parse(text: str | None) -> NeighbourDevs:
    """``NEIGHBOUR_DEVS`` text; ValueError says what is accepted."""
    value = (text if text is not None else DEFAULT).strip()
    if value in ("detect", "all", "none"):
        return NeighbourDevs(value)
    if value == "":
        return NeighbourDevs("none")
    if value.startswith("list:"):
        devices = tuple(value[5:].split())
        if not devices:
            raise ValueError("'list:' names no device")
        return NeighbourDevs("list", devices)
    raise ValueError(f"{value!r}: expected detect, all, none or list:DEV [DEV...]")


def is_ct_host_end(name: str) -> bool:
    """Host ends of CT devices never get proxy entries (venet<CTID>, veth<CTID>.<N>)."""
    return bool(VENET_HOST_PATTERN.fullmatch(name) or re.fullmatch(r"veth\d+\.\d+", name))


def devices_for(rtnl: Rtnl, setting: NeighbourDevs, address: CtAddress,
                all_devices: Sequence[tuple[str, int]] | None = None) -> list[tuple[str, int]]:
    """(name, index) of the devices that proxy ``address`` under ``setting``.

    Call it before the host route to the CT exists (``detect`` looks the address up).
    """
    if setting.mode == "none":
        return []
    if setting.mode == "list":
        found = []
        for name in setting.devices:
            index = rtnl.link_index(name)
            if index is not None:
                found.append((name, index))
        return found
    if setting.mode == "all":
        return list(all_devices if all_devices is not None else arp_devices(rtnl))
    route = rtnl.route_to(str(address.address))
    if route.oif is None or route.gateway or route.kind != "unicast" or route.dst_len <= 0:
        return []
    if route.dst_len >= address.full_prefix:
        return []
    device = rtnl.link_name(route.oif)
    if device is None or is_ct_host_end(device):
        return []
    return [(device, route.oif)]


def arp_devices(rtnl: Rtnl) -> list[tuple[str, int]]:
    """Devices that are up, do ARP, are not loopback, bridge ports or CT host ends."""
    found = []
    for link in rtnl.links():
        flags = int(link["flags"])
        name = str(link.get_attr("IFLA_IFNAME"))
        if not flags & IFF_UP or flags & (IFF_LOOPBACK | IFF_NOARP):
            continue
        if link.get_attr("IFLA_MASTER") or is_ct_host_end(name):
            continue
        found.append((name, int(link["index"])))
    return found


def enable_proxy_ndp(device: str) -> None:
    """IPv6 proxy entries answer only where ``proxy_ndp`` is on."""
    path = f"/proc/sys/net/ipv6/conf/{device}/proxy_ndp"
    try:
        with open(path, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
    except FileNotFoundError:
        pass


# -- announcements ------------------------------------------------------------------------


def announce(device: str, mac: bytes, addresses: Iterable[CtAddress]) -> None:
    """Tell the LAN on ``device`` that ``addresses`` now live behind this host: a
    gratuitous ARP request for IPv4 (``arpsend -U``), an unsolicited neighbour
    advertisement for IPv6 (``ndsend``).  Best effort: a failure is not an error."""
    for address in addresses:
        try:
            if address.version == 4:
                _gratuitous_arp(device, mac, address.address.packed)
            else:
                _unsolicited_na(device, mac, address.address.packed)
        except OSError:
            continue


def arp_packet(mac: bytes, ip: bytes) -> bytes:
    """A broadcast gratuitous ARP request (sender = target = ``ip``)."""
    ether = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip
    return ether + arp


def _gratuitous_arp(device: str, mac: bytes, ip: bytes) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC) as sock:
        sock.bind((device, ETH_P_ARP))
        sock.send(arp_packet(mac, ip))


def na_message(mac: bytes, target: bytes) -> bytes:
    """An ICMPv6 neighbour advertisement (override) for ``target`` with our MAC; the
    kernel fills in the checksum of raw ICMPv6 sockets."""
    flags = 0x20000000  # override
    return struct.pack("!BBHI", 136, 0, 0, flags) + target + struct.pack("!BB", 2, 1) + mac


def _unsolicited_na(device: str, mac: bytes, target: bytes) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        index = socket.if_nametoindex(device)
        sock.sendto(na_message(mac, target), (str(ipaddress.IPv6Address("ff02::1")), 0, 0, index))
