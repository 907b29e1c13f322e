"""The resource plugins of the default set on one CT: a busybox CT with beancounter and
CPU settings through its whole life, checked in the kernel's own files.

Marked ``vm``: it runs under Debian 12's stock kernel with cgroup v2 only as well as on
this host, where the cgroup files have their v1 names.
"""

from __future__ import annotations

import json

import pytest

from vzcore.linux import mounts
from vzcore.linux.cgroups import CgroupSet
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox"), pytest.mark.vm]

RAM = 128 << 20


def kernel_limits(cg: CgroupSet) -> dict[str, str]:
    """What the kernel enforces for the CT, by the names of the cgroup version in use."""
    if cg.version == 1:
        return {"cpu weight": cg.read("cpu", "cpu.shares"),
                "cpu quota": cg.read("cpu", "cpu.cfs_quota_us"),
                "cpus": cg.read("cpuset", "cpuset.cpus"),
                "memory": cg.read("memory", "memory.limit_in_bytes"),
                "processes": cg.read("pids", "pids.max")}
    return {"cpu weight": cg.read("cpu", "cpu.weight"),
            "cpu quota": cg.read("cpu", "cpu.max").split()[0],
            "cpus": cg.read("cpuset", "cpuset.cpus"),
            "memory": cg.read("memory", "memory.max"),
            "processes": cg.read("pids", "pids.max")}


def test_a_ct_with_beancounter_and_cpu_settings_lives_and_leaves_nothing(
        vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    vzctl("set", 101, "--numproc", "50:50", "--ram", str(RAM), "--cpuunits", "2000",
          "--cpulimit", "50", "--cpumask", "0", "--save")
    vzctl("start", 101)
    cg = vz_env.cgroups(101)
    v1 = cg.version == 1
    assert kernel_limits(cg) == {"cpu weight": "2048" if v1 else "200", "cpu quota": "50000",
                                 "cpus": "0", "memory": str(RAM), "processes": "50"}

    # held values are the kernel's: numproc is the CT's task count
    counters = json.loads(vzctl("ubc", "-j", 101).stdout)[0]
    assert counters["numproc"]["held"] == len(cg.pids())
    assert counters["physpages"]["held"] > 0

    vzctl("set", 101, "--cpulimit", "25", "--numproc", "60:60")  # live, without --save
    limits = kernel_limits(cg)
    assert (limits["cpu quota"], limits["processes"]) == ("25000", "60")

    vzctl("stop", 101)
    assert not any(directory.exists() for directory in vz_env.ct_cgroup_dirs(101))
    assert not mounts.mounts_below(vz_env.ct_root(101))
    vzctl("destroy", 101)
    assert not vz_env.private(101).exists()
