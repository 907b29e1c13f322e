"""NEIGHBOUR_DEVS: proxy entries and announcements go where it says, and nowhere else.

Only the test's own uplink (a veth pair in the test run's namespace) is ever named or
detected; what the host "announces" is captured on the uplink's other end.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from network_helpers import UPLINK, UPLINK_PEER, Net, proxies

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "veth")]

ETH_P_ALL = 0x0003


def capture(device: str, seconds: float, frames: list[bytes]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        sock.bind((device, 0))
        sock.settimeout(0.2)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                frames.append(sock.recv(2048))
            except TimeoutError:
                continue


def gratuitous_arp_senders(frames: list[bytes]) -> set[str]:
    return {socket.inet_ntoa(f[28:32]) for f in frames
            if f[12:14] == b"\x08\x06" and f[28:32] == f[38:42]}


def advertised_targets(frames: list[bytes]) -> set[str]:
    found = set()
    for f in frames:
        if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136:  # ICMPv6 NA
            found.add(socket.inet_ntop(socket.AF_INET6, f[62:78]))
    return found


def start_and_capture(net: Net, ctid: int) -> list[bytes]:
    frames: list[bytes] = []
    listener = threading.Thread(target=capture, args=(UPLINK_PEER, 3.0, frames))
    listener.start()
    time.sleep(0.2)
    net.vzctl("start", ctid)
    listener.join()
    return frames


def test_detect_proxies_and_announces_on_the_subnets_device_only(net: Net) -> None:
    net.env.write_vz_conf(NEIGHBOUR_DEVS="detect")
    net.create(101, "--ipadd", "10.199.0.43", "--ipadd", "10.199.1.2", "--ipadd", "fd99::43")
    frames = start_and_capture(net, 101)
    entries = {(p["dst"], p["dev"]) for p in proxies()}
    assert entries == {("10.199.0.43", UPLINK), ("fd99::43", UPLINK)}, \
        "only addresses in the uplink's subnets, only on the uplink"
    assert Path(f"/proc/sys/net/ipv6/conf/{UPLINK}/proxy_ndp").read_text().strip() == "1"
    assert gratuitous_arp_senders(frames) == {"10.199.0.43"}
    assert "fd99::43" in advertised_targets(frames)
    net.vzctl("set", 101, "--ipadd", "10.199.0.44")
    assert ("10.199.0.44", UPLINK) in {(p["dst"], p["dev"]) for p in proxies()}
    net.vzctl("set", 101, "--ipdel", "10.199.0.43")
    assert "10.199.0.43" not in {p["dst"] for p in proxies()}
    net.vzctl("stop", 101)
    assert proxies() == []


def test_none_touches_no_device(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.0.43")
    frames = start_and_capture(net, 101)
    assert proxies() == []
    assert gratuitous_arp_senders(frames) == set()


def test_a_wrong_setting_is_refused(net: Net) -> None:
    net.create(101, "--ipadd", "10.199.1.2")
    net.env.write_vz_conf(NEIGHBOUR_DEVS="sometimes")
    refused = net.vzctl("start", 101, check=False)
    assert refused.returncode == 21 and "NEIGHBOUR_DEVS" in refused.stderr

