"""--netdev_add/--netdev_del: a host interface (a veth end made for the test, in the test's
network namespace) moves into a running CT with its address, and comes back on
--netdev_del, on stop, and after the CT's init was killed (issue 16)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest
from devices_helpers import RunningCt

from vzcore.testing.pytest_plugin import Vzctl

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "veth")]

CT_END, HOST_END = "vzdt-ct", "vzdt-host"
CT_ADDRESS, HOST_ADDRESS = "10.231.0.1", "10.231.0.2"


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def veth() -> Iterator[None]:
    """A veth pair in the test's network namespace: CT_END (to be moved) and HOST_END."""
    _ip("link", "add", CT_END, "type", "veth", "peer", "name", HOST_END)
    try:
        _ip("addr", "add", f"{CT_ADDRESS}/24", "dev", CT_END)
        _ip("addr", "add", f"{HOST_ADDRESS}/24", "dev", HOST_END)
        _ip("link", "set", CT_END, "up")
        _ip("link", "set", HOST_END, "up")
        yield
    finally:
        subprocess.run(["ip", "link", "del", HOST_END], capture_output=True, check=False)


def _on_host() -> bool:
    try:
        socket.if_nametoindex(CT_END)
    except OSError:
        return False
    return True


def _back_with_its_address() -> None:
    assert _on_host(), f"{CT_END} is not back on the host"
    shown = _ip("-o", "addr", "show", "dev", CT_END)
    assert f"{CT_ADDRESS}/24" in shown, shown
    assert "UP" in _ip("-o", "link", "show", "dev", CT_END)


def _inside(ct: RunningCt) -> None:
    assert not _on_host(), f"{CT_END} is still on the host"
    shown = ct.sh(f"ip -o addr show dev {CT_END}").stdout
    assert f"{CT_ADDRESS}/24" in shown, shown
    pinged = ct.sh(f"ping -c 1 -W 5 {HOST_ADDRESS}")
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr


def test_a_host_interface_moves_in_and_comes_back(ct: RunningCt, vzlist: Vzctl,
                                                  veth: None) -> None:
    ct.vzctl("set", ct.ctid, "--netdev_add", CT_END, "--save")
    _inside(ct)
    assert CT_END in vzlist("-H", "-o", "netdev", ct.ctid).stdout
    ct.vzctl("set", ct.ctid, "--netdev_del", CT_END)
    _back_with_its_address()
    assert ct.sh(f"ip link show dev {CT_END}").returncode != 0

    ct.vzctl("set", ct.ctid, "--netdev_add", CT_END)  # live, and saved before: in the config
    _inside(ct)
    ct.vzctl("stop", ct.ctid)
    _back_with_its_address()

    ct.vzctl("start", ct.ctid)  # NETDEV saved: moved in at start
    _inside(ct)
    init = json.loads(ct.env.state(ct.ctid).read_text())["init"]["pid"]
    os.kill(init, signal.SIGKILL)
    # The CT's namespace is held, so the veth end is not destroyed with it; the next
    # command that finds the CT dead gives it back.
    ct.vzctl("stop", ct.ctid, check=False)
    assert not ct.env.state(ct.ctid).exists()
    _back_with_its_address()
    assert not list((ct.env.root / "run/vz/devices").glob("*.netns"))
