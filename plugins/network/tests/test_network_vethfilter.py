"""The bridged veth filters (:mod:`vzcore_network.vethfilter`), run by the module's own
interpreter of classic BPF on hand-made frames (no root needed)."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from vzcore_network.antispoof import TC_ACT_SHOT, TC_ACT_UNSPEC, run
from vzcore_network.netif import NetifSpecType, merge_ifname, parse_netif_conf, resolve
from vzcore_network.vethfilter import egress, ingress, link_local

MAC = "02:00:00:00:00:0A"
OTHER = "02:00:00:00:00:0B"
BCAST = "FF:FF:FF:FF:FF:FF"
OWN = ipaddress.ip_address("10.0.0.10")
OWN6 = ipaddress.ip_address("fd00::10")
ADDRS = [OWN, OWN6]


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def eth(src: str, ethertype: int, payload: bytes, dst: str = BCAST) -> bytes:
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def arp(sha: str, spa: str, tpa: str = "10.0.0.1", op: int = 1) -> bytes:
    return (struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac(sha)
            + ipaddress.ip_address(spa).packed + bytes(6) + ipaddress.ip_address(tpa).packed)


def ipv4(src: str) -> bytes:
    return bytes([0x45, 0]) + bytes(10) + ipaddress.ip_address(src).packed + bytes(4)


def ipv6(src: str, next_header: int, payload: bytes) -> bytes:
    return (struct.pack("!IHBB", 6 << 28, len(payload), next_header, 255)
            + ipaddress.ip_address(src).packed + ipaddress.ip_address("ff02::1").packed + payload)


def advert(target: str) -> bytes:
    return bytes([136, 0, 0, 0, 0x20, 0, 0, 0]) + ipaddress.ip_address(target).packed


def verdict(program: list, frame: bytes, **kwargs: bool) -> str:
    result = run(program, frame, **kwargs)
    assert result in (TC_ACT_UNSPEC, TC_ACT_SHOT)
    return "pass" if result == TC_ACT_UNSPEC else "drop"


def test_mac_filter_checks_ethernet_and_arp_sender() -> None:
    program = ingress(MAC, True, None)
    assert verdict(program, eth(MAC, 0x88B5, bytes(46))) == "pass"
    assert verdict(program, eth(OTHER, 0x88B5, bytes(46))) == "drop"
    assert verdict(program, eth(MAC, 0x0806, arp(MAC, "10.0.0.99"))) == "pass", \
        "without ip=, any address may be claimed with the CT's own MAC"
    assert verdict(program, eth(MAC, 0x0806, arp(OTHER, "10.0.0.99"))) == "drop"
    assert verdict(program, eth(MAC, 0x0800, ipv4("192.0.2.1"))) == "pass"


def test_addresses_checked_with_or_without_mac_filter() -> None:
    for mac_filter in (True, False):
        program = ingress(MAC, mac_filter, ADDRS)
        assert verdict(program, eth(MAC, 0x0806, arp(MAC, str(OWN)))) == "pass"
        assert verdict(program, eth(MAC, 0x0806, arp(MAC, "0.0.0.0"))) == "pass", "RFC 5227 probe"
        assert verdict(program, eth(MAC, 0x0806, arp(MAC, "10.0.0.11"))) == "drop"
        assert verdict(program, eth(MAC, 0x0806, arp(MAC, "10.0.0.11", op=2))) == "drop"
        assert verdict(program, eth(MAC, 0x0800, ipv4(str(OWN)))) == "pass"
        assert verdict(program, eth(MAC, 0x0800, ipv4("10.0.0.11"))) == "drop"
        assert verdict(program, eth(MAC, 0x0800, ipv4("0.0.0.0"))) == "pass", "DHCP client"
        assert verdict(program, eth(MAC, 0x86DD, ipv6(str(OWN6), 17, bytes(8)))) == "pass"
        assert verdict(program, eth(MAC, 0x86DD, ipv6("fd00::11", 17, bytes(8)))) == "drop"
        assert verdict(program, eth(MAC, 0x86DD, ipv6(str(link_local(MAC)), 17, bytes(8)))) == "pass"
        assert verdict(program, eth(MAC, 0x8100, bytes(46))) == "drop", "VLAN tag in the data"
        assert verdict(program, eth(MAC, 0x0800, ipv4(str(OWN))), vlan_tagged=True) == "drop"
        assert verdict(program, eth(OTHER, 0x88B5, bytes(46))) == ("drop" if mac_filter else "pass")


def test_neighbour_advertisement_target_must_be_own() -> None:
    program = ingress(MAC, True, ADDRS)
    own_ll = str(link_local(MAC))
    assert verdict(program, eth(MAC, 0x86DD, ipv6(own_ll, 58, advert(str(OWN6))))) == "pass"
    assert verdict(program, eth(MAC, 0x86DD, ipv6(own_ll, 58, advert("fd00::11")))) == "drop"
    assert verdict(program, eth(MAC, 0x86DD, ipv6(own_ll, 60, bytes(8) + advert("fd00::11")))) == "drop"
    mld = bytes([58, 0, 5, 2, 0, 0, 1, 0]) + bytes([143]) + bytes(27)
    assert verdict(program, eth(MAC, 0x86DD, ipv6("::", 0, mld))) == "pass"
    assert verdict(program, eth(MAC, 0x86DD, ipv6("::", 0, mld[:8] + advert("fd00::11")))) == "drop"


def test_egress_only_to_the_cts_mac_or_group() -> None:
    program = egress(MAC, True)
    assert verdict(program, eth(OTHER, 0x0800, bytes(46), dst=MAC)) == "pass"
    assert verdict(program, eth(OTHER, 0x0800, bytes(46), dst=BCAST)) == "pass"
    assert verdict(program, eth(OTHER, 0x86DD, bytes(60), dst="33:33:00:00:00:01")) == "pass"
    assert verdict(program, eth(MAC, 0x0800, bytes(46), dst=OTHER)) == "drop"
    assert verdict(egress(MAC, False), eth(MAC, 0x0800, bytes(46), dst=OTHER)) == "pass"


def test_netif_keys_and_options() -> None:
    spec = NetifSpecType().parse("eth0,,,,br0,off")
    assert spec.mac_filter == "off" and spec.render() == "ifname=eth0,bridge=br0,mac_filter=off"
    with pytest.raises(ValueError, match="on or off"):
        NetifSpecType().parse("eth0,,,,br0,maybe")
    (netif,) = parse_netif_conf("ifname=eth0,bridge=br0,ip=10.0.0.10 fd00::10/64")
    resolved = resolve(101, netif)
    assert resolved.mac_filter and resolved.addresses == ("10.0.0.10", "fd00::10/64")
    assert resolve(101, parse_netif_conf("ifname=eth0")[0]).addresses is None
    text = merge_ifname("ifname=eth0", ["eth0"], {"ifaddr": ["10.0.0.10", "fe80::1"],
                                                  "mac_filter": ["off"]})
    assert text == "ifname=eth0,mac_filter=off,ip=10.0.0.10 fe80::1"
    assert merge_ifname(text, ["eth0"], {"ifaddr": ["none"]}) == "ifname=eth0,mac_filter=off"
    with pytest.raises(ValueError, match="twice"):
        parse_netif_conf("ifname=eth0,ip=10.0.0.10 10.0.0.10/24")
    with pytest.raises(ValueError, match="mac_filter"):
        parse_netif_conf("ifname=eth0,mac_filter=yes")


def test_many_addresses_fit_through_long_jumps() -> None:
    v4 = [ipaddress.ip_address(f"10.1.{i >> 8}.{i & 255}") for i in range(300)]
    v6 = [ipaddress.ip_address(f"fd00:1::{i:x}") for i in range(100)]
    program = ingress(MAC, True, [*v4, *v6])
    assert any(code == 0x05 for code, *_ in program), "far jumps go through JA"
    assert all(0 <= jt <= 255 and 0 <= jf <= 255 for _code, jt, jf, _k in program)
    for address in ("10.1.0.0", "10.1.1.43"):
        assert verdict(program, eth(MAC, 0x0800, ipv4(address))) == "pass"
        assert verdict(program, eth(MAC, 0x0806, arp(MAC, address))) == "pass"
    assert verdict(program, eth(MAC, 0x0800, ipv4("10.1.1.44"))) == "drop"
    assert verdict(program, eth(MAC, 0x0806, arp(MAC, "10.1.1.44"))) == "drop"
    assert verdict(program, eth(OTHER, 0x0800, ipv4("10.1.0.0"))) == "drop"
    for address in ("fd00:1::0", "fd00:1::63"):
        assert verdict(program, eth(MAC, 0x86DD, ipv6(address, 17, bytes(8)))) == "pass"
        assert verdict(program, eth(MAC, 0x86DD, ipv6(address, 58, advert(address)))) == "pass"
    assert verdict(program, eth(MAC, 0x86DD, ipv6("fd00:1::64", 17, bytes(8)))) == "drop"
    assert verdict(program, eth(MAC, 0x86DD, ipv6("fd00:1::1", 58, advert("fd00:1::64")))) == "drop"
    with pytest.raises(ValueError, match="list fewer with --ifaddr"):
        ingress(MAC, True, [ipaddress.ip_address(f"fd00:2::{i:x}") for i in range(400)])
