"""A live change of a CT's device grants never lets a process in the CT through with more
than the old or the new set allows: cgroup v1's devices files on the host, the BPF
program replaced in one step on cgroup v2 in the VM (issue 16)."""

from __future__ import annotations

import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from devices_helpers import LoopDevice, RunningCt

from vzcore.testing.pytest_plugin import vzctl_binary
from vzcore_devices import enforce
from vzcore_devices.policy import DEFAULT, Rule, merged

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox"), pytest.mark.vm]

FLIPS = 2  # read -> write -> read: both directions; each vzctl set costs seconds in the VM


def _set(ct: RunningCt, spec: str) -> None:
    ct.vzctl("set", ct.ctid, "--devnodes", spec)


def _wait_for(path: Path, what: str) -> None:
    """Wait (bounded, generously: a VM under emulation is slow) for a file to appear."""
    for _ in range(3000):
        if path.exists():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen")


def test_switching_read_and_write_never_opens_read_write(ct: RunningCt,
                                                         loop_device: LoopDevice) -> None:
    """The old set allows reading the loop device, the new one writing it; neither lets it
    be opened for both.  A loop in the CT opens it every way while the grant flips."""
    name = loop_device.name
    # The default list holds on this kernel's path too: a disk node does not open.
    made = ct.sh(f"mknod /dev/x b {loop_device.numbers[0]} {loop_device.numbers[1]}")
    assert made.returncode != 0
    ct.plant_node("hostdisk", stat.S_IFBLK, loop_device.numbers)
    assert ct.probe("open", "/dev/hostdisk", "r") in ("EPERM", "EACCES")
    assert ct.probe("open", "/dev/null", "rw") == "ok"
    _set(ct, f"{name}:r")
    loop = subprocess.Popen(
        [vzctl_binary(), "exec3", str(ct.ctid), "/usr/local/bin/devprobe", "loop",
         f"/dev/{name}", "/tmp/stop"], env=ct.env.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ct.host_path("/tmp/stop.started"), "the open loop's first round")
        for flip in range(FLIPS):
            _set(ct, f"{name}:{'w' if flip % 2 == 0 else 'r'}")
        ct.host_path("/tmp/stop").write_text("")
        out, err = loop.communicate(timeout=600)
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
    counts = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", out))
    assert counts, out + err
    assert counts["rw"] == 0, f"opened read-write during the changes: {counts}"
    assert counts["r"] > 0 and counts["w"] > 0, counts  # it saw both sets
    # Exactly the new set is in force, once: one program (v2) or the v1 list.
    groups = ct.env.cgroups(ct.ctid)
    kind, group = enforce.path_of(groups)
    if kind == "v2":
        assert len(enforce.attached_ids(groups)) == 1
    else:
        major, minor = loop_device.numbers
        expected = merged([*DEFAULT, Rule("b", major, minor, "rm")])
        assert sorted(group.file("devices.list").read_text().split("\n")[:-1]) == \
            sorted(r.text() for r in expected)
