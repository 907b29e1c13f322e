"""venet on the real kernel, as a new user would check it, in the test run's netns."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from network_helpers import HOST_V4, HOST_V6, Net, host_ping, ip, links, routes

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "veth")]


def http_get(address: str, timeout: float = 3) -> str:
    host = f"[{address}]" if ":" in address else address
    with urllib.request.urlopen(f"http://{host}/", timeout=timeout) as answer:
        return str(answer.read().decode().strip())


def test_two_cts_reach_the_host_each_other_and_serve_http(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.1.2")
    net.create(102, "--ipadd", "10.199.1.3")
    net.vzctl("start", 101)
    net.vzctl("start", 102)
    assert host_ping("10.199.1.2") and host_ping("10.199.1.3"), "the host reaches each CT at once"
    assert net.sh(101, "ping -c 1 -W 1 10.199.1.3").returncode == 0
    assert net.sh(102, "ping -c 1 -W 1 10.199.1.2").returncode == 0
    assert net.sh(101, f"ping -c 1 -W 1 {HOST_V4}").returncode == 0
    net.serve(101, "hello-from-101")
    assert http_get("10.199.1.2") == "hello-from-101", "the host gets the CT's web page"
    page = net.sh(102, "wget -q -O - http://10.199.1.2/").stdout.strip()
    assert page == "hello-from-101", "the other CT gets it through the host"


def test_inside_one_venet0_with_the_address_and_no_neighbours(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.1.2")
    net.vzctl("start", 101)
    addr = net.sh(101, "ip addr show dev venet0").stdout
    assert "inet 10.199.1.2/32" in addr and "NOARP" in addr
    assert "default dev venet0" in net.sh(101, "ip route").stdout
    assert net.sh(101, "ping -c 2 -W 1 " + HOST_V4).returncode == 0
    assert net.sh(101, "ip neigh").stdout.strip() == "", "no MAC-level neighbours"
    assert not [n for n in json.loads(ip("-j", "neigh", "show", "dev", "venet101").stdout)
                if n.get("lladdr") and "NOARP" not in n.get("state", [])]
    devices = net.sh(101, "ls /sys/class/net").stdout.split()
    assert sorted(devices) == ["lo", "venet0"]
    assert "venet101" in links(), "one host-side device per CT"


def _icmp_sources(stop: threading.Event, ready: threading.Event, result: list[str]) -> None:
    """Collect the sources of ICMP echo requests that reach the host's IP stack."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(0.1)
        ready.set()
        while not stop.is_set():
            try:
                packet = sock.recv(2048)
            except TimeoutError:
                continue
            if packet[20] == 8:  # echo request
                result.append(socket.inet_ntoa(packet[12:16]))


def sources_seen_while(action: Callable[[], object]) -> list[str]:
    """The sources of echo requests that arrive while ``action`` runs (and shortly after)."""
    seen: list[str] = []
    stop, ready = threading.Event(), threading.Event()
    listener = threading.Thread(target=_icmp_sources, args=(stop, ready, seen))
    listener.start()
    ready.wait()
    try:
        action()
        time.sleep(0.5)
    finally:
        stop.set()
        listener.join()
    return seen


def test_a_ct_cannot_take_or_spoof_another_cts_address(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.1.2")
    net.create(102, "--ipadd", "10.199.1.3")
    net.vzctl("start", 101)
    net.vzctl("start", 102)
    net.serve(102, "hello-from-102")
    # CT 101's root claims CT 102's address and an address nobody gave it
    net.sh(101, "ip addr add 10.199.1.3/32 dev venet0 && ip addr add 192.0.2.77/32 dev venet0")
    assert http_get("10.199.1.3") == "hello-from-102", "traffic for 102 still reaches 102"
    def ping_from(source: str) -> Callable[[], object]:
        option = f"-I {source} " if source else ""
        return lambda: net.sh(101, f"ping -c 2 -W 1 {option}{HOST_V4}", check=False)

    assert "10.199.1.2" in sources_seen_while(ping_from("")), "control: the CT's own source arrives"
    for spoofed in ("10.199.1.3", "192.0.2.77"):
        assert spoofed not in sources_seen_while(ping_from(spoofed)), \
            f"a packet from {spoofed} left CT 101"
    # the source filter alone, without the reverse-path check behind it
    Path("/proc/sys/net/ipv4/conf/venet101/rp_filter").write_text("0")
    Path("/proc/sys/net/ipv4/conf/all/rp_filter").write_text("0")
    assert "10.199.1.3" not in sources_seen_while(ping_from("10.199.1.3"))
    assert "10.199.1.2" in sources_seen_while(ping_from(""))


def test_ipv6_addresses_work_like_ipv4(net: Net) -> None:
    if not _ipv6_forwarding_possible():
        pytest.skip("needs net.ipv6.conf.*.force_forwarding (Linux 6.17+) or the test "
                    "netns's all.forwarding")
    net.create(101, "--ipadd", "fd99:1::2", "--ipadd", "10.199.1.2")
    net.create(102, "--ipadd", "fd99:1::3/64")
    net.vzctl("start", 101)
    net.vzctl("start", 102)
    assert host_ping("fd99:1::2") and host_ping("fd99:1::3")
    assert "inet6 fd99:1::3/64" in net.sh(102, "ip addr show dev venet0").stdout
    assert "fe80" not in net.sh(102, "ip addr show dev venet0").stdout, "no link-local on venet"
    assert net.sh(101, "ping -c 1 -W 1 fd99:1::3").returncode == 0
    assert net.sh(101, f"ping -c 1 -W 1 {HOST_V6}").returncode == 0
    net.serve(102, "v6-page")
    assert http_get("fd99:1::3") == "v6-page"
    net.sh(101, "ip addr add fd99:1::3/128 dev venet0")
    assert net.sh(101, f"ping -c 1 -W 1 -I fd99:1::3 {HOST_V6}", check=False).returncode != 0
    assert http_get("fd99:1::3") == "v6-page"


def _ipv6_forwarding_possible() -> bool:
    try:
        with open("/proc/sys/net/ipv6/conf/lo/force_forwarding"):
            return True
    except FileNotFoundError:
        # an older kernel: forwarding must be on for the whole (test) namespace
        with open("/proc/sys/net/ipv6/conf/all/forwarding", "w") as f:
            f.write("1")
        return True


def test_live_ipadd_and_ipdel(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.1.2")
    net.vzctl("start", 101)
    net.vzctl("set", 101, "--ipadd", "10.199.1.20", "--save")
    assert host_ping("10.199.1.20"), "the new address answers at once"
    assert 'IP_ADDRESS="10.199.1.2 10.199.1.20"' in net.conf_text(101)
    net.vzctl("set", 101, "--ipdel", "10.199.1.2")
    assert not host_ping("10.199.1.2"), "the removed address is gone at once"
    assert host_ping("10.199.1.20")
    assert not [r for r in routes() if r["dst"] == "10.199.1.2"]
    assert "10.199.1.2/" not in net.sh(101, "ip addr show dev venet0").stdout
    assert 'IP_ADDRESS="10.199.1.2 10.199.1.20"' in net.conf_text(101), "no --save: config kept"
    listed = json.loads(net.vzctl("-j", "-o", "ctid,ip", binary="vzlist").stdout)
    assert listed == [{"ctid": 101, "ip": ["10.199.1.20"]}], "vzlist shows what the CT has"
    net.vzctl("set", 101, "--ipdel", "all", "--save")
    assert not host_ping("10.199.1.20")
    assert "IP_ADDRESS" not in net.conf_text(101)


def test_addresses_added_to_a_ct_started_without_any(net: Net) -> None:
    net.create(101)
    net.vzctl("start", 101)
    assert sorted(net.sh(101, "ls /sys/class/net").stdout.split()) == ["lo"]
    assert net.sh(101, "ping -c 1 -W 1 127.0.0.1").returncode == 0, "lo is up"
    net.vzctl("set", 101, "--ipadd", "10.199.1.5")
    assert host_ping("10.199.1.5")


def test_vzlist_ip_field_and_plugins_listing(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.1.2", "--ipadd", "fd99:1::2/64")
    net.create(102)
    stopped = json.loads(net.vzctl("-a", "-j", "-o", "ctid,ip", binary="vzlist").stdout)
    assert stopped == [{"ctid": 101, "ip": ["10.199.1.2", "fd99:1::2"]}, {"ctid": 102, "ip": []}]
    net.vzctl("start", 101)
    table = net.vzctl("-H", "-o", "ctid,ip", binary="vzlist").stdout.split()
    assert table == ["101", "10.199.1.2", "fd99:1::2"]
    plugins = {row["name"]: row for row in json.loads(net.vzctl("plugins", "-j").stdout)}
    assert plugins["network"]["state"] == "active"
    assert {"ipadd", "ipdel", "netif_add", "netif_del", "nameserver", "searchdomain"} <= set(
        plugins["network"]["parameters"])


def test_start_refuses_an_address_another_running_ct_has(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.1.2")
    net.vzctl("start", 101)
    net.create(102)
    net.env.conf(102).write_text(net.conf_text(102) + 'IP_ADDRESS="10.199.1.2"\n')  # by hand
    refused = net.vzctl("start", 102, check=False)
    assert refused.returncode == 78 and "already in use by CT 101" in refused.stderr
    assert "venet102" not in links()
    assert host_ping("10.199.1.2")

