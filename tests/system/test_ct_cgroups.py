"""A busybox CT's whole life with cgroup limits set by a plugin, checked from both sides.

A test plugin (loaded through ``PLUGINS``) sets pids, memory and CPU limits in
``vz_pre_start`` as a resource plugin does; the test checks that the CT's init and every
``vzctl exec`` run inside the CT's group under those limits, that the CT sees its group
as its cgroup root, and that stop and destroy leave nothing.  Marked ``vm``: it runs under
Debian 12's stock kernel with cgroup v2 only as well as on this host.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.linux.cgroups import CgroupSet
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox"), pytest.mark.vm]

PIDS_MAX = 16
MEMORY_MAX = 64 << 20

LIMITS_PLUGIN = f'''
"""Fixed cgroup limits for every CT, as a resource plugin would set them."""
from vzcore import hookimpl
from vzcore.plugin import PluginInfo


@hookimpl
def vz_plugin_info():
    return PluginInfo(subsystem="testlimits", summary="fixed test limits")


@hookimpl
def vz_pre_start(ct, run):
    cg = run.cgroups
    v2 = cg.version == 2
    cg.write("pids", "pids.max", "{PIDS_MAX}")
    cg.write("memory", "memory.max" if v2 else "memory.limit_in_bytes", "{MEMORY_MAX}")
    cg.write("cpu", "cpu.weight" if v2 else "cpu.shares", "200" if v2 else "2048")
'''


def counters(cg: CgroupSet, controller: str, name: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in cg.read(controller, name).splitlines())}


def test_a_ct_lives_and_dies_inside_its_limited_cgroups(vz_env: VzEnv, vzctl: Vzctl,
                                                        busybox_ct: int) -> None:
    vz_env.add_plugin_module("vz_test_limits", LIMITS_PLUGIN)
    vzctl("start", busybox_ct)
    cg = vz_env.cgroups(busybox_ct)
    v2 = cg.version == 2
    assert sorted(d.directory for d in cg.dirs) == sorted(vz_env.ct_cgroup_dirs(101))
    assert all(d.directory.is_dir() for d in cg.dirs)
    assert cg.read("pids", "pids.max") == str(PIDS_MAX)
    assert int(cg.read("memory", "memory.max" if v2 else "memory.limit_in_bytes")) == MEMORY_MAX
    assert cg.read("cpu", "cpu.weight" if v2 else "cpu.shares") == ("200" if v2 else "2048")
    init = json.loads(vz_env.state(busybox_ct).read_text())["init"]["pid"]
    assert init in cg.pids()

    # The CT's cgroup namespace is rooted at its own group, in every hierarchy.
    inside = vzctl("exec", busybox_ct, "cat /proc/self/cgroup").stdout.splitlines()
    assert inside and all(line.endswith(":/") for line in inside), inside

    # vzctl exec joins the CT's group: a process it leaves behind is counted there.
    vzctl("exec", busybox_ct, "sleep 600 >/dev/null 2>&1 &")
    assert len(cg.pids()) >= 2
    assert int(cg.read("pids", "pids.current")) >= 2

    # The limits hold inside: forks beyond pids.max are refused, memory beyond
    # memory.max is killed.
    vzctl("exec2", busybox_ct, f"for i in $(seq {2 * PIDS_MAX}); do "
          "sleep 600 </dev/null >/dev/null 2>&1 & done 2>/dev/null", check=False)
    assert counters(cg, "pids", "pids.events")["max"] > 0
    assert int(cg.read("pids", "pids.current")) <= PIDS_MAX
    for pid in cg.pids():  # from the host: inside, not even killall could fork now
        if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
            os.kill(pid, signal.SIGKILL)
    hog = vzctl("exec2", busybox_ct, "dd if=/dev/zero of=/dev/null bs=160M count=1", check=False)
    assert hog.returncode == 137, f"dd of 160 MB under a 64 MB limit: {hog.returncode} {hog.stderr}"
    if v2:
        assert counters(cg, "memory", "memory.events")["oom_kill"] >= 1
    else:
        assert int(cg.read("memory", "memory.failcnt")) > 0

    vzctl("stop", busybox_ct)
    assert not cg.exists(), "stop removes the CT's groups in every hierarchy"
    assert not mounts.mounts_below(vz_env.root)
    vzctl("destroy", busybox_ct)
    assert vzctl("status", busybox_ct).stdout.strip() == "CTID 101 deleted unmounted down"


@pytest.mark.cgroup2
def test_a_ct_root_manages_its_delegated_subtree_and_exec_still_joins(
        vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    """What systemd does in a CT on a v2 host: mount cgroup2, move init to a leaf, enable
    controllers for its own children.  The CT's group then takes no process, so vzctl exec
    must join init's leaf, and stop must remove the CT's own groups below its group."""
    vzctl("start", busybox_ct)
    cg = vz_env.cgroups(busybox_ct)
    (unified,) = cg.dirs
    vzctl("exec", busybox_ct, "mkdir -p /run/cg && mount -t cgroup2 none /run/cg && "
                              "mkdir /run/cg/init.scope && echo 1 > /run/cg/init.scope/cgroup.procs")
    vzctl("exec", busybox_ct, "echo '+pids +memory' > /run/cg/cgroup.subtree_control && "
                              "mkdir /run/cg/payload && echo 5 > /run/cg/payload/pids.max")
    assert {"pids", "memory"} <= set((unified.directory / "cgroup.subtree_control").read_text().split())
    assert (unified.directory / "payload/pids.max").read_text().strip() == "5"
    assert vzctl("exec", busybox_ct, "cat /proc/self/cgroup").stdout.strip() == "0::/init.scope"
    # What was delegated is the group's structure, not its limits: those stay the host's.
    before = (unified.directory / "memory.max").read_text()
    assert vzctl("exec2", busybox_ct, "echo 12345678 > /run/cg/memory.max", check=False).returncode
    assert (unified.directory / "memory.max").read_text() == before
    init = json.loads(vz_env.state(busybox_ct).read_text())["init"]["pid"]
    assert init in cg.pids()
    vzctl("stop", busybox_ct)
    assert not cg.exists(), "stop removes the CT's groups and those it made below them"
