"""The cpu plugin on real CTs: settings in the cgroups at start and live, what a CT sees of
its CPUs, the host's own cpuunits (CT 0), vzlist fields, refused input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from vzcore.linux.cgroups import CgroupSet
from vzcore.paths import Paths
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_cpu import mapping
from vzcore_cpu.grammar import online_cpus
from vzcore_cpu.measure import busy_loops, cpu_seconds

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]
two_cpus = pytest.mark.skipif(len(online_cpus()) < 2, reason="needs at least 2 online CPUs")


def limit_files(cg: CgroupSet) -> tuple[str, str]:
    """The CT's weight and its quota as the kernel has them (v1: shares, quota_us)."""
    if cg.version == 1:
        return cg.read("cpu", "cpu.shares"), cg.read("cpu", "cpu.cfs_quota_us")
    return cg.read("cpu", "cpu.weight"), cg.read("cpu", "cpu.max").split()[0]


def expected(units: int, quota: int | None, version: int) -> tuple[str, str]:
    return (str(mapping.weight_of(units, version)),
            str(quota) if quota is not None else ("-1" if version == 1 else "max"))


def test_settings_reach_the_cgroups_at_start_and_live(vz_env: VzEnv, vzctl: Vzctl, vzlist: Vzctl,
                                                      busybox_ct: int) -> None:
    vzctl("set", busybox_ct, "--cpuunits", "3000", "--cpulimit", "50", "--save")
    vzctl("start", busybox_ct)
    cg = vz_env.cgroups(busybox_ct)
    version = cg.version
    assert limit_files(cg) == expected(3000, 50_000, version)

    ncpus = len(online_cpus())
    vzctl("set", busybox_ct, "--cpulimit", "25%", "--cpuunits", "1000")  # live only
    assert limit_files(cg) == expected(1000, 25_000 * ncpus, version)
    assert 'CPULIMIT="50"' in vz_env.conf(busybox_ct).read_text()
    row = json.loads(vzlist("-j", "-o", "cpuunits,cpulimit,cpus,cpumask").stdout)[0]
    assert row == {"cpuunits": 1000, "cpulimit": 25 * ncpus, "cpus": None, "cpumask": "all"}

    # Back to the saved value: the running CT takes it although the config has it already.
    vzctl("set", busybox_ct, "--cpulimit", "50")
    assert limit_files(cg) == expected(1000, 50_000, version)
    vzctl("set", busybox_ct, "--cpulimit", "0", "--cpus", "1", "--save")
    assert limit_files(cg) == expected(1000, 100_000, version)  # cpus caps the quota
    assert 'CPUS="1"' in vz_env.conf(busybox_ct).read_text()

    vzctl("stop", busybox_ct)
    row = json.loads(vzlist("-a", "-j", "-o", "cpuunits,cpulimit,cpus,cpu_usage,laverage").stdout)[0]
    assert row == {"cpuunits": 3000, "cpulimit": 0, "cpus": 1, "cpu_usage": None, "laverage": None}


@two_cpus
def test_nproc_and_cpuinfo_follow_cpus_and_cpumask(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    host = online_cpus()

    def seen() -> tuple[int, frozenset[int], set[int]]:
        out = vzctl("exec", busybox_ct, "nproc; cat /sys/devices/system/cpu/online; "
                    "grep ^processor /proc/cpuinfo").stdout.splitlines()
        processors = {int(line.split(":")[1]) for line in out[2:]}
        return int(out[0]), mapping.parse_cpulist(out[1]), processors

    vzctl("set", busybox_ct, "--cpus", "1", "--save")
    vzctl("start", busybox_ct)
    cg = vz_env.cgroups(busybox_ct)
    nproc, online, processors = seen()
    assert nproc == 1
    assert online == processors == mapping.parse_cpulist(cg.read("cpuset", "cpuset.cpus"))
    assert len(online) == 1 and online <= host

    vzctl("set", busybox_ct, "--cpus", "0")
    assert seen() == (len(host), host, set(host))
    vzctl("set", busybox_ct, "--cpumask", "0")
    assert seen() == (1, frozenset({0}), {0})
    vzctl("set", busybox_ct, "--cpumask", "all")
    assert seen()[0] == len(host)

    # The view is read-only for the CT, and goes away with it.
    assert vzctl("exec", busybox_ct, "echo x > /proc/cpuinfo", check=False).returncode != 0
    view = vz_env.root / "run/vz/cpu" / str(busybox_ct)
    assert (view / "cpuinfo").exists()
    vzctl("stop", busybox_ct)
    assert not view.exists()


def test_boot_all_weighs_the_cts_against_the_host_once_at_its_end(vz_env: VzEnv,
                                                                   vzctl: Vzctl) -> None:
    # boot-all's starts leave the parent group's weight to vz_batch_done, which reads the
    # running CTs' weights once for the whole boot instead of once per start
    for ctid, units in ((101, 1000), (102, 3000), (103, 500)):
        vzctl("create", ctid, "--ostemplate", "busybox")
        vzctl("set", ctid, "--onboot", "yes", "--cpuunits", units, "--save")
    vzctl("set", 0, "--cpuunits", "2000", "--save")
    vzctl("boot-all")
    try:
        cg = vz_env.cgroups(101)
        version = cg.version
        weights = [mapping.weight_of(units, version) for units in (1000, 3000, 500)]
        assert int(cg.parent().read("cpu", mapping.weight_file(version))) == \
            mapping.parent_weight(weights, 2000, version)
    finally:
        vzctl("stop-all", "--fast")


REBALANCE_LOG = '''
import os
from vzcore import hookimpl
from vzcore.plugin import PluginInfo
from vzcore_cpu import apply

_rebalance = apply.rebalance


def _logged(parent, host_units, *, leaving=None):
    value = _rebalance(parent, host_units, leaving=leaving)
    with open(os.environ["VZ_REBALANCE_LOG"], "a") as log:
        log.write(f"{value}\\n")
    return value


apply.rebalance = _logged


@hookimpl
def vz_plugin_info():
    return PluginInfo(subsystem="rebalancelog", summary="logs the parent weight's updates")
'''


def test_stop_all_weighs_the_remaining_cts_once_at_its_end(vz_env: VzEnv, vzctl: Vzctl,
                                                          tmp_path: Path) -> None:
    # stop-all's stops leave the parent group's weight to vz_batch_done too: one update
    # for the whole shutdown, not one per stop (each reading every running CT's weight)
    log = tmp_path / "rebalances"
    vz_env.add_plugin_module("rebalance_log", REBALANCE_LOG)
    vz_env.extra_env["VZ_REBALANCE_LOG"] = str(log)
    for ctid, units in ((101, 1000), (102, 3000), (103, 500)):
        vzctl("create", ctid, "--ostemplate", "busybox")
        vzctl("set", ctid, "--onboot", "yes", "--cpuunits", units, "--save")
    vzctl("boot-all")
    cg = vz_env.cgroups(101)
    version = cg.version
    name = mapping.weight_file(version)
    group = cg.parent().dir_for("cpu")
    assert group is not None
    # A group of the parent that no CT of this installation owns (another's running CT):
    # the weight left once every CT stopped is its own.
    other = group.directory / "other"
    other.mkdir()
    try:
        (other / name).write_text(str(mapping.weight_of(2000, version)))
        log.unlink()
        vzctl("stop-all", "--fast")
        expected = mapping.parent_weight([mapping.weight_of(2000, version)], 1000, version)
        assert log.read_text().split() == [str(expected)], "one update per stop before"
        assert int(cg.parent().read("cpu", name)) == expected
    finally:
        vzctl("stop-all", "--fast")
        other.rmdir()


def test_host_cpuunits_weigh_the_running_cts_against_the_host(vz_env: VzEnv, vzctl: Vzctl,
                                                              busybox_ct: int) -> None:
    vzctl("create", 102, "--ostemplate", "busybox")
    vzctl("set", 102, "--cpuunits", "3000", "--save")
    vzctl("start", busybox_ct)
    vzctl("start", 102)
    cg = vz_env.cgroups(busybox_ct)
    parent = cg.parent()
    version = cg.version
    name = mapping.weight_file(version)

    def parent_weight() -> int:
        return int(parent.read("cpu", name))

    both = [mapping.weight_of(1000, version), mapping.weight_of(3000, version)]
    assert parent_weight() == mapping.parent_weight(both, 1000, version)
    vzctl("set", 0, "--cpuunits", "2000")
    assert parent_weight() == mapping.parent_weight(both, 2000, version)
    assert "VE0CPUUNITS" not in vz_env.root.joinpath("etc/vz/vz.conf").read_text()
    vzctl("set", 0, "--cpuunits", "4000", "--save")
    assert parent_weight() == mapping.parent_weight(both, 4000, version)
    assert 'VE0CPUUNITS="4000"' in vz_env.root.joinpath("etc/vz/vz.conf").read_text()
    # A CT's start, stop and cpuunits change rebalance the CTs against the host.
    vzctl("stop", 102)
    assert parent_weight() == mapping.parent_weight(both[:1], 4000, version)
    vzctl("set", busybox_ct, "--cpuunits", "8000")
    assert parent_weight() == mapping.parent_weight([mapping.weight_of(8000, version)], 4000, version)

    refused = vzctl("set", 0, "--hostname", "x", "--save", check=False)
    assert refused.returncode == 21
    assert "CT 0 is the host: --hostname cannot be set for it" in refused.stderr
    assert vzctl("set", 0, "--cpuunits", "7", check=False).returncode == 21


def test_bad_values_change_nothing(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    before = vz_env.conf(busybox_ct).read_text()
    for option, value in (("--cpumask", "0-8191"), ("--cpuunits", "7"), ("--cpulimit", "101%"),
                          ("--cpumask", "2-1"), ("--cpus", "-1")):
        result = vzctl("set", busybox_ct, option, value, "--save", check=False)
        assert result.returncode in (20, 21), (option, value, result.stderr)
        assert f"CT {busybox_ct}" in result.stderr or "Error" in result.stderr
    assert vz_env.conf(busybox_ct).read_text() == before
    missing = vzctl("set", busybox_ct, "--cpumask", "0-8191", "--save", check=False).stderr
    assert "do not exist on this host" in missing


def test_cpu_usage_and_pressure_in_vzlist(vz_env: VzEnv, vzctl: Vzctl, vzlist: Vzctl,
                                          busybox_ct: int) -> None:
    vzctl("set", 0, "--cpuunits", "8")  # the CT wins against other work on a shared host
    vzctl("start", busybox_ct)
    paths = Paths(vz_env.root)
    idle = cpu_seconds(paths, busybox_ct)
    vzctl("exec", busybox_ct, busy_loops(1))
    time.sleep(0.5)
    row = json.loads(vzlist("-j", "-o", "cpu_usage,laverage,uptime").stdout)[0]
    assert row["cpu_usage"] - idle > 0.2, row
    assert row["uptime"] > 0.5
    if row["laverage"] is not None:  # PSI needs cgroup2 (a v1-only host has none)
        assert len(row["laverage"]) == 3 and all(0 <= v <= 100 for v in row["laverage"])
    table = vzlist("-H", "-o", "ctid,cpu_usage,laverage").stdout.split()
    assert float(table[1]) >= row["cpu_usage"]
    assert table[2] == "-" or len(table[2].split("/")) == 3
