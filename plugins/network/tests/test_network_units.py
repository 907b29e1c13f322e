"""The network plugin's pure parts, without root: grammars, merges, names, filter."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.errors import InvalidValue
from vzcore.plugin.manager import load_plugins
from vzcore.plugin.registry import Registry
from vzcore_network import antispoof, ctfiles, neighbours, netif
from vzcore_network.addresses import merge_add, merge_del, parse_address
from vzcore_network.devices import plan_of, venet_host


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    yield Registry.build(load_plugins({"PLUGINS": "vzcore_network.plugin"}, autoload=False))


def plan(registry: Registry, current: dict[str, str | None], **given: list[str]) -> dict[str, str | None]:
    changes, _ = registry.plan_changes(101, current, given, verb="set")
    return changes.new_values()


# -- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical"), [
    ("10.199.1.2", "10.199.1.2"),
    ("10.199.1.2/32", "10.199.1.2"),
    ("10.199.1.2/24", "10.199.1.2/24"),
    ("10.199.1.2/255.255.255.0", "10.199.1.2/24"),
    ("FD00:0::2", "fd00::2"),
    ("fd00::2/64", "fd00::2/64"),
])
def test_addresses_are_canonical(text: str, canonical: str) -> None:
    assert str(parse_address(text)) == canonical


@pytest.mark.parametrize(("text", "why"), [
    ("10.199.1", "not an IPv4 or IPv6 address"),
    ("10.199.1.300", "not an IPv4 or IPv6 address"),
    ("hello", "not an IPv4 or IPv6 address"),
    ("10.1.1.1/33", "not a prefix length"),
    ("0.0.0.0", "unspecified"),
    ("127.0.0.2", "loopback"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("fe80::1", "link-local"),
    ("::1", "loopback"),
])
def test_bad_addresses_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_address(text)


def test_ipadd_and_ipdel_merge_like_vzctl() -> None:
    a, b, c = (parse_address(x) for x in ("10.0.0.1", "10.0.0.2", "fd00::3/64"))
    assert merge_add(None, [a, b]) == "10.0.0.1 10.0.0.2"
    assert merge_add("10.0.0.1 10.0.0.2", [a, c]) == "10.0.0.2 10.0.0.1 fd00::3/64"
    assert merge_add("10.0.0.1", [parse_address("10.0.0.1/24")]) == "10.0.0.1/24"
    assert merge_del("10.0.0.1 10.0.0.2", [a]) == "10.0.0.2"
    assert merge_del("10.0.0.1/24 10.0.0.2", [a]) == "10.0.0.2", "the prefix does not matter"
    assert merge_del("10.0.0.1 10.0.0.2", ["all"]) is None
    with pytest.raises(ValueError, match=r"10\.0\.0\.9 is not an address of the CT"):
        merge_del("10.0.0.1", [parse_address("10.0.0.9")])


def test_options_through_the_registry(registry: Registry) -> None:
    assert registry.parameters["ip"] is registry.parameters["ipadd"]
    new = plan(registry, {"IP_ADDRESS": "10.0.0.1"}, ipadd=["10.0.0.2", "fd00::2"])
    assert new["IP_ADDRESS"] == "10.0.0.1 10.0.0.2 fd00::2"
    with pytest.raises(InvalidValue, match=r"invalid value for --ipadd: '10\.0\.0' is not"):
        plan(registry, {}, ipadd=["10.0.0"])


def test_plan_refuses_a_broken_config() -> None:
    with pytest.raises(InvalidValue, match=r"CT 101: IP_ADDRESS: 'x' is not"):
        plan_of(101, "10.0.0.1 x", None)
    with pytest.raises(InvalidValue, match=r"lists 10\.0\.0\.1 twice"):
        plan_of(101, "10.0.0.1 10.0.0.1/24", None)


# -- veth interfaces ---------------------------------------------------------------------


EXAMPLE = ("ifname=eth0,bridge=vmbr0,mac=00:18:51:E1:5C:A4,host_ifname=veth101.0,"
           "host_mac=00:18:51:B8:D4:D7,mac_filter=on")


def test_netif_reads_and_writes_vzctls_format() -> None:
    parsed = netif.parse_netif_conf(EXAMPLE + ";ifname=eth1,gw=10.0.0.1")
    assert parsed[0].bridge == "vmbr0" and parsed[0].host_mac == "00:18:51:B8:D4:D7"
    assert parsed[1].extra == (("gw", "10.0.0.1"),), "keys of other versions are kept"
    assert netif.render_netif_conf(parsed) == EXAMPLE + ";ifname=eth1,gw=10.0.0.1"
    with pytest.raises(ValueError, match="no ifname"):
        netif.parse_netif_conf("mac=00:18:51:E1:5C:A4")


def test_netif_add_del_and_changes(registry: Registry) -> None:
    new = plan(registry, {}, netif_add=["eth0", "eth1,00:18:51:00:00:01,vh1,,br0"])
    assert new["NETIF"] == "ifname=eth0;ifname=eth1,bridge=br0,mac=00:18:51:00:00:01,host_ifname=vh1"
    with pytest.raises(InvalidValue, match="interface eth0 is already configured"):
        plan(registry, {"NETIF": "ifname=eth0"}, netif_add=["eth0"])
    assert plan(registry, {"NETIF": "ifname=eth0;ifname=eth1"}, netif_del=["eth0"])["NETIF"] == "ifname=eth1"
    assert plan(registry, {"NETIF": "ifname=eth0;ifname=eth1"}, netif_del=["all"])["NETIF"] is None
    with pytest.raises(InvalidValue, match="no veth interface eth7"):
        plan(registry, {"NETIF": "ifname=eth0"}, netif_del=["eth7"])
    changed = plan(registry, {"NETIF": "ifname=eth0"}, mac=["00:18:51:aa:bb:cc"], ifname=["eth0"],
                   bridge=["br1"])
    assert changed["NETIF"] == "ifname=eth0,bridge=br1,mac=00:18:51:AA:BB:CC"
    with pytest.raises(InvalidValue, match="--mac needs --ifname"):
        plan(registry, {"NETIF": "ifname=eth0"}, mac=["00:18:51:aa:bb:cc"])
    with pytest.raises(InvalidValue, match="multicast"):
        plan(registry, {}, netif_add=["eth0,01:00:5e:00:00:01"])
    with pytest.raises(InvalidValue, match="not a valid interface name"):
        plan(registry, {}, netif_add=["a/b"])


def test_generated_values_are_stable_and_valid() -> None:
    mac = netif.generated_mac(101, "eth0", "ct")
    assert mac == netif.generated_mac(101, "eth0", "ct")
    assert mac != netif.generated_mac(102, "eth0", "ct")
    assert netif.check_mac(mac) == mac and mac.startswith("02:")
    assert netif.generated_mac(101, "eth0", "host").startswith("FE:")
    assert netif.default_host_ifname(101, "eth0") == "veth101.0"
    long_name = netif.default_host_ifname(2147483644, "eth12")
    assert len(long_name) <= 15 and long_name == netif.default_host_ifname(2147483644, "eth12")
    assert len(venet_host(2147483644)) <= 15


def test_host_names_must_be_unique_and_not_venet() -> None:
    with pytest.raises(ValueError, match=r"would both be veth101\.0"):
        netif.check_host_names(101, [netif.Netif("eth0"), netif.Netif("lan0")])
    with pytest.raises(ValueError, match="reserved for venet"):
        netif.check_host_names(101, [netif.Netif("eth0", host_ifname="venet7")])


# -- the source filter ---------------------------------------------------------------------


def ipv4_packet(src: str, proto: int = 0x0800) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20, 0, 0, 64, 1, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address("10.9.9.9").packed)
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", proto) + header


def ipv6_packet(src: str) -> bytes:
    header = struct.pack("!IHBB16s16s", 6 << 28, 0, 58, 64, ipaddress.IPv6Address(src).packed,
                         ipaddress.IPv6Address("fd00::9").packed)
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", 0x86DD) + header


def test_filter_passes_only_the_cts_own_sources() -> None:
    own = [ipaddress.ip_address(a) for a in ("10.199.1.2", "10.199.1.20", "fd00::2", "fd00::1:2")]
    insns = antispoof.program(own)
    go, drop = antispoof.TC_ACT_UNSPEC, antispoof.TC_ACT_SHOT
    assert antispoof.run(insns, ipv4_packet("10.199.1.2")) == go
    assert antispoof.run(insns, ipv4_packet("10.199.1.20")) == go
    assert antispoof.run(insns, ipv4_packet("10.199.1.3")) == drop
    assert antispoof.run(insns, ipv6_packet("fd00::2")) == go
    assert antispoof.run(insns, ipv6_packet("fd00::1:2")) == go
    assert antispoof.run(insns, ipv6_packet("fd00::3")) == drop
    assert antispoof.run(insns, ipv6_packet("fd00::1:3")) == drop, "one word differing is enough"
    assert antispoof.run(insns, ipv4_packet("10.199.1.2", proto=0x0806)) == drop, "ARP"
    assert antispoof.run(insns, ipv4_packet("10.199.1.2")[:30]) == drop, "truncated"
    assert antispoof.run(antispoof.program([]), ipv4_packet("10.199.1.2")) == drop
    assert len(antispoof.encode(insns)) == 8 * len(insns)


# -- DNS options ------------------------------------------------------------------------------


def test_nameserver_lists_replace_and_inherit(registry: Registry, tmp_path: Path) -> None:
    assert plan(registry, {"NAMESERVER": "1.1.1.1"}, nameserver=["10.0.0.53", "fd00::53"])[
        "NAMESERVER"] == "10.0.0.53 fd00::53"
    with pytest.raises(InvalidValue, match="cannot be combined"):
        plan(registry, {}, nameserver=["inherit", "10.0.0.53"])
    with pytest.raises(InvalidValue, match="not an IP address"):
        plan(registry, {}, nameserver=["dns.example"])
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.53\nsearch host.example\n")
    assert ctfiles.host_resolv(host) == (["192.0.2.53"], ["host.example"])


# -- configuration and cost ------------------------------------------------------------------


def test_neighbour_devs_grammar() -> None:
    assert neighbours.parse(None).mode == "detect"
    assert neighbours.parse("none").mode == "none"
    assert neighbours.parse("list:eth0 eth1") == neighbours.NeighbourDevs("list", ("eth0", "eth1"))
    with pytest.raises(ValueError, match="expected detect, all, none or list"):
        neighbours.parse("sometimes")
    assert neighbours.is_ct_host_end("venet101") and neighbours.is_ct_host_end("veth101.0")
    assert not neighbours.is_ct_host_end("eth0")


def test_announcement_packets() -> None:
    mac = bytes.fromhex("020000000001")
    arp = neighbours.arp_packet(mac, bytes([10, 199, 1, 2]))
    assert arp[:6] == b"\xff" * 6 and arp[12:14] == b"\x08\x06" and len(arp) == 42
    assert arp[28:32] == arp[38:42] == bytes([10, 199, 1, 2]), "sender and target are the address"
    na = neighbours.na_message(mac, ipaddress.IPv6Address("fd00::2").packed)
    assert na[0] == 136 and na[-6:] == mac


def test_loading_the_plugin_imports_no_pyroute2() -> None:
    code = ("import sys, vzcore_network.plugin as p; list(p.vz_parameters()); "
            "print(sorted(m for m in sys.modules if m.startswith('pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"


def test_codecs_load_without_the_package_init() -> None:
    code = ("import sys; from vzcore_network import rtnl; rtnl.load(); "
            "print('pyroute2.iproute' in sys.modules, 'asyncio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_other_code_still_gets_all_of_pyroute2_afterwards() -> None:
    code = ("from vzcore_network import rtnl; rtnl.load(); "
            "import pyroute2.netlink.rtnl.ifinfmsg; from pyroute2 import IPRoute, NDB; "
            "import pyroute2; print(IPRoute.__name__, pyroute2.__version__ != '')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["IPRoute", "True"]


def test_link_index_answers_without_a_netlink_query() -> None:
    from vzcore_network.rtnl import Rtnl

    with Rtnl() as rtnl:
        assert rtnl.link_index("lo") == socket.if_nametoindex("lo")
        assert rtnl.link_index("vz-nosuch0") is None
        assert rtnl.link_index("x" * 20) is None  # longer than any interface name
        assert rtnl.seq == 0  # no request went over netlink (each would count one)
