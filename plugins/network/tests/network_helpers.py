"""Helpers for the network plugin's system tests (the fixtures are in conftest.py).

Every system test runs in the test run's own network namespace (marker ``netns``): the
uplink is a veth pair made there (``vzt-up0`` with 10.199.0.1/24 and fd99::1/64), which
gives the "host" a source address to reach CTs from; nothing touches a real interface.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from vzcore.testing.probes import IPROUTE2
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

UPLINK = "vzt-up0"
UPLINK_PEER = "vzt-up1"
HOST_V4 = "10.199.0.1"
HOST_V6 = "fd99::1"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The host's ``ip`` (iproute2) in the test's namespace: for setting up test devices
    and for looking at the result the way an administrator would."""
    return subprocess.run([IPROUTE2, *args], capture_output=True, text=True, check=check)


def host_ping(address: str, count: int = 1) -> bool:
    """True if ``address`` answers one ping from the host (busybox ping, 1 s)."""
    result = subprocess.run(["busybox", "ping", "-c", str(count), "-W", "1", address],
                            capture_output=True, text=True, check=False)
    return result.returncode == 0


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def links() -> set[str]:
    return {entry["ifname"] for entry in json.loads(ip("-j", "link", "show").stdout)}


def routes(family: str = "-4") -> list[dict[str, object]]:
    return list(json.loads(ip("-j", family, "route", "show").stdout))


def proxies() -> list[dict[str, object]]:
    return [e for f in ("-4", "-6") for e in json.loads(ip("-j", f, "neigh", "show", "proxy").stdout)]


@attrs.define
class Net:
    """A vz_env whose NEIGHBOUR_DEVS is "none", with the uplink in place."""

    env: VzEnv
    vzctl: Vzctl

    def conf_text(self, ctid: int) -> str:
        return self.env.conf(ctid).read_text()

    def create(self, ctid: int, *options: str) -> int:
        self.vzctl("create", ctid, "--ostemplate", "busybox", *options)
        return ctid

    def sh(self, ctid: int, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.vzctl("exec2", ctid, command, check=check)

    def serve(self, ctid: int, text: str) -> None:
        """busybox httpd on port 80 in the CT, serving ``text``."""
        self.sh(ctid, f"mkdir -p /www && echo {text} > /www/index.html && httpd -h /www -p 80")


def state_of(env: VzEnv, ctid: int) -> dict[str, object]:
    return dict(json.loads(Path(env.state(ctid)).read_text()))
