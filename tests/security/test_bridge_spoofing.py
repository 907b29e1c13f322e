"""Bridged veth spoofing (issue 19, item 5): a CT on a bridge must not claim another CT's
IP address (ARP into the host's neighbour table) or MAC (the bridge's forwarding table).

Two CTs on a bridge made in the test run's own network namespace; CT 101 (the attacker)
sends raw frames with the security probe (``probe arp``/``probe ether``), then a ping
through the same queue, so the host has handled the forged frames before the test looks
at its tables.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.security.conftest import PROFILES
from vzcore.testing.contracts import profile_options
from vzcore.testing.probect import install_probe
from vzcore.testing.probes import IPROUTE2
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "veth")]

BRIDGE = "vzt-sbr0"
HOST = "10.198.0.1"
HOST6 = "fd98::1"
ADDRESS = {101: "10.198.0.2", 102: "10.198.0.3"}
ADDRESS6 = {101: "fd98::2", 102: "fd98::3"}
HOST_END = {101: "veth101.0", 102: "veth102.0"}
FOREIGN_MAC = "02:00:5e:10:99:99"


def ip(*args: str) -> str:
    return subprocess.run([IPROUTE2, *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def bridge() -> Iterator[str]:
    """A bridge with the host's address; ARP updates are never held back (locktime 0),
    so a forged ARP that gets through shows at once."""
    subprocess.run([IPROUTE2, "link", "del", BRIDGE], capture_output=True, check=False)
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", f"{HOST}/24", "dev", BRIDGE)
    ip("-6", "addr", "add", f"{HOST6}/64", "dev", BRIDGE, "nodad")
    ip("link", "set", BRIDGE, "up")
    ip("ntable", "change", "name", "arp_cache", "dev", BRIDGE, "locktime", "0")
    yield BRIDGE
    subprocess.run([IPROUTE2, "link", "del", BRIDGE], capture_output=True, check=False)


@attrs.define
class Lan:
    vzctl: Vzctl
    env: VzEnv

    def sh(self, ctid: int, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.vzctl("exec2", ctid, command, check=check)

    def probe(self, ctid: int, *args: str) -> None:
        result = self.vzctl("exec3", ctid, "/usr/local/bin/probe", *args, check=False)
        assert result.stdout.strip() == "ok", f"the CT could not send the frame: {result.stdout}"

    def mac(self, ctid: int) -> str:
        return self.sh(ctid, "cat /sys/class/net/eth0/address").stdout.strip()

    def ping(self, ctid: int, address: str) -> bool:
        ping = "ping6" if ":" in address else "ping"
        return self.sh(ctid, f"{ping} -c 1 -W 2 {address}", check=False).returncode == 0


def make_ct(vzctl: Vzctl, env: VzEnv, probe_binary: Path, ctid: int, profile: str,
            *netif_options: str) -> None:
    vzctl("create", ctid, "--ostemplate", "busybox", "--netif_add", f"eth0,,,,{BRIDGE}",
          *profile_options(env, profile))
    if netif_options:
        vzctl("set", ctid, "--ifname", "eth0", *netif_options, "--save")
    install_probe(env, ctid, probe_binary)
    vzctl("start", ctid)
    vzctl("exec2", ctid, "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad && "
                         f"ip addr add {ADDRESS[ctid]}/24 dev eth0 && "
                         f"ip -6 addr add {ADDRESS6[ctid]}/64 dev eth0")


def neighbour_mac(address: str) -> str | None:
    entries = json.loads(ip("-j", "-6" if ":" in address else "-4", "neigh", "show", address,
                            "dev", BRIDGE))
    return entries[0].get("lladdr") if entries else None


def ports_of(mac: str) -> set[str]:
    """The bridge ports the bridge's forwarding table has ``mac`` on."""
    fdb = json.loads(subprocess.run(["bridge", "-j", "fdb", "show", "br", BRIDGE],
                                    capture_output=True, text=True, check=True).stdout)
    return {e["ifname"] for e in fdb if e.get("mac") == mac and "self" not in e.get("flags", [])}


def attack(lan: Lan, victim_mac: str, *, address: bool = True) -> None:
    """CT 101 claims CT 102's MAC and (``address``) CT 102's addresses with its own MAC
    (ARP, NDP); then a ping behind them in the same queue."""
    own = lan.mac(101)
    lan.probe(101, "ether", "eth0", victim_mac)
    if address:
        lan.probe(101, "arp", "eth0", own, own, ADDRESS[102], HOST)
        lan.probe(101, "na", "eth0", ADDRESS6[102], own)
    assert lan.ping(101, HOST), "CT 101's own traffic still flows"


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def ifaddr(ctid: int) -> list[str]:
    return ["--ifaddr", ADDRESS[ctid], "--ifaddr", f"{ADDRESS6[ctid]}/64"]


def setup_pair(vzctl: Vzctl, vz_env: VzEnv, probe_binary: Path, profile: str,
               *attacker_options: str) -> tuple[Lan, str]:
    make_ct(vzctl, vz_env, probe_binary, 101, profile, *attacker_options)
    make_ct(vzctl, vz_env, probe_binary, 102, profile, *ifaddr(102))
    lan = Lan(vzctl, vz_env)
    victim = lan.mac(102)
    assert lan.ping(102, HOST) and lan.ping(102, HOST6), "the victim reaches the host"
    assert lan.ping(101, ADDRESS[102]) and lan.ping(101, ADDRESS6[102]), "the CTs reach each other"
    assert neighbour_mac(ADDRESS[102]) == victim and neighbour_mac(ADDRESS6[102]) == victim
    assert ports_of(victim) == {HOST_END[102]}
    return lan, victim


def test_ct_cannot_claim_another_cts_address_or_mac(vzctl: Vzctl, vz_env: VzEnv, bridge: str,
                                                     probe_binary: Path, profile: str) -> None:
    lan, victim = setup_pair(vzctl, vz_env, probe_binary, profile, *ifaddr(101))
    attack(lan, victim)
    assert neighbour_mac(ADDRESS[102]) == victim, "the host still maps CT 102's address to its MAC"
    assert neighbour_mac(ADDRESS6[102]) == victim, "... and its IPv6 address"
    assert ports_of(victim) == {HOST_END[102]}, "the bridge has CT 102's MAC on its port only"
    assert lan.ping(102, HOST) and lan.ping(101, ADDRESS[102]) and lan.ping(102, ADDRESS[101])
    assert lan.ping(102, HOST6) and lan.ping(101, ADDRESS6[102]) and lan.ping(102, ADDRESS6[101])
    # and the CT cannot take a MAC of its own choosing either
    lan.sh(101, f"ip link set eth0 address {FOREIGN_MAC}")
    assert not lan.ping(101, HOST), "frames from a MAC the CT chose do not pass"
    assert not ports_of(FOREIGN_MAC)


def test_mac_filter_on_without_addresses_still_protects_the_mac(
        vzctl: Vzctl, vz_env: VzEnv, bridge: str, probe_binary: Path, profile: str) -> None:
    lan, victim = setup_pair(vzctl, vz_env, probe_binary, profile)
    # (without --ifaddr the CT's addresses are its own business: docs/network.md)
    attack(lan, victim, address=False)
    assert ports_of(victim) == {HOST_END[102]}, "the bridge has CT 102's MAC on its port only"
    assert lan.ping(102, HOST) and lan.ping(101, ADDRESS[102])


def test_mac_filter_off_keeps_the_address_guarantee(vzctl: Vzctl, vz_env: VzEnv, bridge: str,
                                                    probe_binary: Path, profile: str) -> None:
    lan, victim = setup_pair(vzctl, vz_env, probe_binary, profile, "--mac_filter", "off",
                             *ifaddr(101))
    assert "mac_filter=off" in vz_env.conf(101).read_text()
    attack(lan, victim)
    assert neighbour_mac(ADDRESS[102]) == victim, "the host still maps CT 102's address to its MAC"
    assert neighbour_mac(ADDRESS6[102]) == victim
    assert lan.ping(102, HOST) and lan.ping(101, ADDRESS[102])
    # what mac_filter=off allows (docs/network.md): any MAC, so a changed one works
    lan.sh(101, f"ip link set eth0 address {FOREIGN_MAC}")
    assert lan.ping(101, HOST)
    assert ports_of(FOREIGN_MAC) == {HOST_END[101]}


def test_live_change_and_stop(vzctl: Vzctl, vz_env: VzEnv, bridge: str, probe_binary: Path) -> None:
    lan, victim = setup_pair(vzctl, vz_env, probe_binary, "userns", "--mac_filter", "off")
    vzctl("set", 101, "--ifname", "eth0", "--mac_filter", "on", *ifaddr(101))
    attack(lan, victim)
    assert neighbour_mac(ADDRESS[102]) == victim and neighbour_mac(ADDRESS6[102]) == victim
    assert ports_of(victim) == {HOST_END[102]}
    # a long list makes a program whose far jumps go through JA: the kernel takes it
    many = [f"10.197.{i}.1" for i in range(60)] + [f"fd97::{i:x}" for i in range(1, 60)]
    vzctl("set", 101, "--ifname", "eth0", *ifaddr(101), *(f"--ifaddr={a}" for a in many))
    assert lan.ping(101, HOST) and lan.ping(101, HOST6) and lan.ping(101, ADDRESS6[102])
    attack(lan, victim)
    assert neighbour_mac(ADDRESS[102]) == victim and neighbour_mac(ADDRESS6[102]) == victim
    for direction in ("ingress", "egress"):
        shown = subprocess.run(["tc", "filter", "show", "dev", HOST_END[101], direction],
                               capture_output=True, text=True, check=True).stdout
        assert "bpf" in shown and "direct-action" in shown, f"no {direction} filter: {shown}"
    vzctl("stop", "--fast", 101)
    ports = {e["ifname"] for e in json.loads(ip("-j", "link", "show", "master", BRIDGE))}
    assert ports == {HOST_END[102]}, "the host end, and its filters with it, went at stop"


def test_ifaddr_cannot_take_another_cts_or_the_hosts_address(vzctl: Vzctl, vz_env: VzEnv,
                                                             bridge: str) -> None:
    vzctl("create", 102, "--ostemplate", "busybox", "--netif_add", f"eth0,,,,{BRIDGE}")
    vzctl("set", 102, "--ifname", "eth0", *ifaddr(102), "--save")
    vzctl("create", 103, "--ostemplate", "busybox", "--ipadd", "10.198.0.40")
    vzctl("create", 101, "--ostemplate", "busybox", "--netif_add", f"eth0,,,,{BRIDGE}")
    before = vz_env.conf(101).read_text()
    for taken, owner in ((ADDRESS[102], "CT 102"), (ADDRESS6[102], "CT 102"),
                         ("10.198.0.40", "CT 103"), (HOST, "the host")):
        result = vzctl("set", 101, "--ifname", "eth0", "--ifaddr", taken, "--save", check=False)
        assert result.returncode == 78, result.stderr
        assert taken in result.stderr and owner.split()[-1] in result.stderr, result.stderr
        assert vz_env.conf(101).read_text() == before
    vzctl("set", 101, "--ifname", "eth0", *ifaddr(101), "--save")
    assert f"ip={ADDRESS[101]} {ADDRESS6[101]}/64" in vz_env.conf(101).read_text()
