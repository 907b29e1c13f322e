"""Nothing of a CT's network stays on the host: after stop, after its init died, and after
vzctl was killed (``kill -9``) at every point of a start."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from network_helpers import UPLINK, Net, links, proxies, routes, wait_for

from vzcore.faults import KILL_ENV, TRACE_ENV
from vzcore.testing.pytest_plugin import vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "veth")]

ADDRESSES = ("10.199.0.42", "fd99::42")
"""In the uplink's subnets, so proxy entries are made on it (NEIGHBOUR_DEVS=list:...)."""


def leftovers() -> list[str]:
    found = [name for name in links() if name in ("venet101", "veth101.0")]
    found += [str(r["dst"]) for f in ("-4", "-6") for r in routes(f)
              if str(r["dst"]).split("/")[0] in ADDRESSES]
    found += [f"proxy {p['dst']}" for p in proxies()]
    return found


@pytest.fixture
def proxied(net: Net, bridge: str) -> Net:
    net.env.write_vz_conf(NEIGHBOUR_DEVS=f"list:{UPLINK}")
    net.create(101, "--ipadd", ADDRESSES[0], "--ipadd", ADDRESSES[1], "--netif_add", f"eth0,,,,{bridge}")
    return net


@pytest.mark.vm  # skipped there while vm-run's kernel has no veth module
def test_stop_removes_devices_routes_and_proxy_entries(proxied: Net) -> None:
    proxied.vzctl("start", 101)
    assert {"venet101", "veth101.0"} <= links()
    assert {p["dst"] for p in proxies()} == set(ADDRESSES), "proxied on NEIGHBOUR_DEVS only"
    assert all(p["dev"] == UPLINK for p in proxies())
    proxied.vzctl("stop", 101)
    assert leftovers() == []


def test_after_init_died_on_its_own(proxied: Net) -> None:
    proxied.vzctl("start", 101)
    init = json.loads(proxied.env.state(101).read_text())["init"]["pid"]
    os.kill(init, signal.SIGKILL)
    assert wait_for(lambda: not {"venet101", "veth101.0"} & links()), \
        "the CT's netns died with init, and the host ends with it"
    assert proxied.vzctl("status", 101).stdout.strip().endswith("down")
    # The console daemon, init's parent, tears the CT down (docs/system-cts.md); a stop
    # that comes first does it instead ("not running" once the daemon has).
    stopped = proxied.vzctl("stop", 101, check=False)
    assert stopped.returncode in (0, 31), stopped.stderr
    assert leftovers() == []


def start_points(net: Net) -> list[str]:
    trace = net.env.root / "trace"
    env = {**net.env.env, TRACE_ENV: str(trace)}
    subprocess.run([vzctl_binary(), "--quiet", "start", "101"], env=env, check=True)
    subprocess.run([vzctl_binary(), "--quiet", "stop", "--fast", "101"], env=net.env.env, check=True)
    points = [p for p in trace.read_text().split() if p.startswith("start:")]
    assert "start:host-setup-done" in points
    return points


def test_kill_9_at_every_point_of_a_start(proxied: Net) -> None:
    for point in start_points(proxied):
        env = {**proxied.env.env, KILL_ENV: point}
        killed = subprocess.run([vzctl_binary(), "--quiet", "start", "101"], env=env,
                                capture_output=True, text=True, check=False)
        assert killed.returncode == -signal.SIGKILL, f"{point}: {killed.stderr}"
        stopped = proxied.vzctl("stop", 101, check=False)
        assert stopped.returncode in (0, 31), f"{point}: {stopped.stderr}"  # 31: nothing ran
        assert leftovers() == [], f"left after kill -9 at {point}"
    proxied.vzctl("start", 101)  # and the CT still starts normally afterwards
    assert {"venet101", "veth101.0"} <= links()
