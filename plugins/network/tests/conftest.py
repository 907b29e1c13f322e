"""Fixtures for the network plugin's system tests: a host "uplink", a bridge, a vz_env
whose ``NEIGHBOUR_DEVS`` is "none".

Every system test runs in the test run's own network namespace (marker ``netns``): the
uplink is a veth pair made there (``vzt-up0`` with 10.199.0.1/24 and fd99::1/64), which
gives the "host" a source address to reach CTs from; nothing touches a real interface.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from network_helpers import HOST_V4, HOST_V6, UPLINK, UPLINK_PEER, Net, ip

from vzcore.testing.pytest_plugin import Vzctl, VzEnv


@pytest.fixture
def uplink() -> Iterator[str]:
    ip("link", "del", UPLINK, check=False)
    ip("link", "add", UPLINK, "type", "veth", "peer", "name", UPLINK_PEER)
    ip("addr", "add", f"{HOST_V4}/24", "dev", UPLINK)
    ip("-6", "addr", "add", f"{HOST_V6}/64", "dev", UPLINK, "nodad")
    ip("link", "set", UPLINK, "up")
    ip("link", "set", UPLINK_PEER, "up")
    yield UPLINK
    ip("link", "del", UPLINK, check=False)


@pytest.fixture
def net(vz_env: VzEnv, vzctl: Vzctl, uplink: str) -> Iterator[Net]:
    vz_env.write_vz_conf(NEIGHBOUR_DEVS="none")
    yield Net(vz_env, vzctl)


@pytest.fixture
def bridge() -> Iterator[str]:
    name = "vzt-br0"
    ip("link", "del", name, check=False)
    ip("link", "add", name, "type", "bridge")
    ip("link", "set", name, "up")
    yield name
    ip("link", "del", name, check=False)
