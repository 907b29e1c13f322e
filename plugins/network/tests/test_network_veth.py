"""Bridged veth interfaces on the real kernel, on a test bridge in the test run's netns."""

from __future__ import annotations

import json

import pytest
from network_helpers import Net, ip, links

from vzcore_network.netif import generated_mac

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "veth")]


def master_of(device: str) -> str | None:
    # (/sys/class/net shows the namespace that mounted /sys, not the test's: ask ip)
    shown = ip("-j", "link", "show", "dev", device, check=False)
    return json.loads(shown.stdout)[0].get("master") if shown.returncode == 0 else None


def test_veth_cts_on_a_bridge_reach_each_other_by_l2(net: Net, bridge: str) -> None:
    net.create(101, "--netif_add", f"eth0,,,,{bridge}")
    net.create(102, "--netif_add", f"eth0,00:18:51:12:34:56,vzt-h102,,{bridge}")
    assert f"NETIF=\"ifname=eth0,bridge={bridge}\"" in net.conf_text(101)
    net.vzctl("start", 101)
    net.vzctl("start", 102)
    assert master_of("veth101.0") == bridge and master_of("vzt-h102") == bridge, \
        "the host ends are on the bridge"
    mac101 = net.sh(101, "cat /sys/class/net/eth0/address").stdout.strip()
    assert mac101 == generated_mac(101, "eth0", "ct").lower(), "a stable MAC of its own"
    assert net.sh(102, "cat /sys/class/net/eth0/address").stdout.strip() == "00:18:51:12:34:56"
    net.sh(101, "ip addr add 10.199.77.1/24 dev eth0")
    net.sh(102, "ip addr add 10.199.77.2/24 dev eth0")
    assert net.sh(101, "ping -c 1 -W 2 10.199.77.2").returncode == 0
    neighbours = net.sh(101, "ip neigh show dev eth0").stdout
    assert "00:18:51:12:34:56" in neighbours, "CT 102 was reached by its MAC, on L2"
    for ctid, host in ((101, 1), (102, 2)):  # (busybox ip has no "nodad")
        net.sh(ctid, "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad && "
                     f"ip -6 addr add fd99:77::{host}/64 dev eth0")
    assert net.sh(101, "ping -c 1 -W 2 fd99:77::2").returncode == 0, "IPv6 on L2 as well"
    net.vzctl("restart", "--fast", 101)
    assert net.sh(101, "cat /sys/class/net/eth0/address").stdout.strip() == mac101, \
        "the same MAC after a restart"


def test_live_netif_add_change_and_del(net: Net, bridge: str) -> None:
    net.create(101)
    net.vzctl("start", 101)
    net.vzctl("set", 101, "--netif_add", f"eth1,,,,{bridge}", "--save")
    assert "eth1" in net.sh(101, "ls /sys/class/net").stdout.split()
    assert master_of("veth101.1") == bridge
    net.vzctl("set", 101, "--ifname", "eth1", "--mac", "00:18:51:AB:CD:EF", "--host_ifname",
              "vzt-h101")
    assert net.sh(101, "cat /sys/class/net/eth1/address").stdout.strip() == "00:18:51:ab:cd:ef"
    assert "vzt-h101" in links() and "veth101.1" not in links()
    assert master_of("vzt-h101") == bridge
    assert "ifname=eth1,bridge=" in net.conf_text(101) and "AB:CD:EF" not in net.conf_text(101), \
        "without --save the config is kept"
    net.vzctl("set", 101, "--netif_del", "eth1", "--save")
    assert "eth1" not in net.sh(101, "ls /sys/class/net").stdout.split()
    assert "vzt-h101" not in links()
    assert "NETIF" not in net.conf_text(101)
    state = json.loads(net.env.state(101).read_text())
    assert state["plugins"]["network"]["record"]["links"] == []


def test_veth_and_venet_together_and_stop_removes_both(net: Net, bridge: str) -> None:
    net.create(101, "--ipadd", "10.199.1.2", "--netif_add", f"eth0,,,,{bridge}")
    net.vzctl("start", 101)
    assert sorted(net.sh(101, "ls /sys/class/net").stdout.split()) == ["eth0", "lo", "venet0"]
    net.vzctl("stop", 101)
    assert not {"venet101", "veth101.0"} & links()
    assert not ip("link", "show", "master", bridge).stdout.strip()
