"""``vzctl boot-all`` and ``stop-all`` (the vz service's commands, contrib/systemd/vz.service):
ONBOOT, BOOTORDER order, a failing CT reported while the rest start, VE_STOP_MODE."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def started_order(stdout: str) -> list[int]:
    """The CTs in the order boot-all reported them started (its progress lines)."""
    return [int(line.split()[1]) for line in stdout.splitlines()
            if line.startswith("CT ") and " started " in line]


def init_starttime(vz_env: VzEnv, ctid: int) -> int:
    """Clock ticks after boot at which the CT's init was forked (/proc/PID/stat field 22)."""
    pid = json.loads(vz_env.state(ctid).read_text())["init"]["pid"]
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[19])


def status(vzctl: Vzctl, ctid: int) -> str:
    return vzctl("status", ctid).stdout.split(maxsplit=3)[3].strip()


def test_boot_all_orders_reports_failures_and_stop_all_stops_every_ct(
        vz_env: VzEnv, vzctl: Vzctl) -> None:
    for ctid in (101, 102, 103, 104, 105):
        vzctl("create", ctid, "--ostemplate", "busybox")
    vzctl("set", 101, "--onboot", "yes", "--bootorder", 10, "--save")
    vzctl("set", 102, "--onboot", "yes", "--bootorder", 20, "--save")
    vzctl("set", 103, "--onboot", "yes", "--save")
    vzctl("set", 104, "--onboot", "no", "--save")
    vzctl("set", 105, "--onboot", "yes", "--bootorder", 30, "--save")
    (vz_env.private(105) / "sbin/init").unlink()  # a broken template: no init to run

    booted = vzctl("boot-all", check=False)
    assert booted.returncode == 3, booted.stdout + booted.stderr
    assert started_order(booted.stdout) == [102, 101, 103]
    assert "CT 105 failed to start" in booted.stderr
    assert "1 failed: CT 105" in booted.stderr  # the summary names it
    starts = [init_starttime(vz_env, ctid) for ctid in (102, 101, 103)]
    assert starts == sorted(starts)
    for ctid in (101, 102, 103):
        assert status(vzctl, ctid) == "mounted running"
    assert status(vzctl, 104) == "unmounted down"
    assert status(vzctl, 105) == "unmounted down"
    assert not vz_env.state(105).exists()

    vzctl("set", 105, "--onboot", "no", "--save")
    again = vzctl("boot-all")  # running CTs are skipped, not failures
    assert "CT 101 skipped" in again.stdout

    vz_env.write_vz_conf(CGROUP_PARENT=vz_env.cgroup_parent, STOP_TIMEOUT="20",
                         VE_STOP_MODE="suspend")
    refused = vzctl("stop-all", check=False)
    assert refused.returncode == 21 and "VE_STOP_MODE=stop" in refused.stderr
    assert status(vzctl, 101) == "mounted running"

    vz_env.write_vz_conf(CGROUP_PARENT=vz_env.cgroup_parent, STOP_TIMEOUT="20",
                         VE_STOP_MODE="stop")
    stopped = vzctl("stop-all")
    assert sorted(int(line.split()[1]) for line in stopped.stdout.splitlines()
                  if line.startswith("CT ") and " stopped " in line) == [101, 102, 103]
    for ctid in (101, 102, 103, 104, 105):
        assert status(vzctl, ctid) == "unmounted down"
    assert "no CT runs" in vzctl("stop-all").stdout


def test_no_onboot_ct_is_nothing_to_do(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    result = vzctl("boot-all")
    assert "no CT to start" in result.stdout
    assert status(vzctl, 101) == "unmounted down"


def test_a_group_held_by_another_installations_ct_is_refused_by_name(
        vz_env: VzEnv, vzctl: Vzctl) -> None:
    """Issue 17: a CT's cgroup that already holds processes (here the init of a CT of
    another installation sharing CGROUP_PARENT, or of an older vzctl that named groups
    plainly) is never started into; boot-all names the group and the fix, and starts the
    rest."""
    from tests.security.test_leftover_cgroups import move, own_groups, planned

    for ctid in (101, 102):
        vzctl("create", ctid, "--ostemplate", "busybox")
        vzctl("set", ctid, "--onboot", "yes", "--save")
    # Another installation's CT init: PID 1 of a PID namespace of its own.
    other = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "600"])
    leftover = planned(vz_env, 101)
    try:
        init = _child_of(other.pid)
        original = own_groups(init)
        leftover.create()
        groups = [d.directory for d in leftover.dirs]
        move(init, groups)
        booted = vzctl("boot-all", check=False)
        assert booted.returncode == 3
        assert started_order(booted.stdout) == [102]
        assert "CT 101 failed to start" in booted.stderr
        assert f"{init} (sleep)" in booted.stderr and "CGROUP_PARENT" in booted.stderr
        assert any(f"cgroup {group} " in booted.stderr for group in groups), booted.stderr
        assert other.poll() is None, "the other installation's CT was touched"
        assert status(vzctl, 101) == "unmounted down"
        move(init, original)
        vzctl("stop-all")
    finally:
        other.kill()
        other.wait()
        leftover.remove()


def _child_of(pid: int) -> int:
    """The one child of ``pid`` (waiting for unshare to fork it)."""
    for _ in range(500):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.01)
    raise AssertionError(f"process {pid} forked no child")


def test_boot_all_refuses_overlapping_areas_as_start_does(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """boot-all compares areas through an index built once (vzcore.lifecycle.areas.AreaIndex);
    it must refuse exactly what a single start refuses."""
    vzctl("create", 102, "--ostemplate", "busybox", "--private", "/vz/private/shared")
    vzctl("create", 103, "--ostemplate", "busybox")
    for ctid in (102, 103):
        vzctl("set", ctid, "--onboot", "yes", "--save")
    conf = vz_env.conf(103)
    conf.write_text(conf.read_text() + 'VE_PRIVATE="/vz/private/shared/inner"\n')
    single = vzctl("start", 103, check=False)
    assert single.returncode == 85 and "overlaps VE_PRIVATE of CT 102" in single.stderr
    booted = vzctl("boot-all", check=False)
    assert booted.returncode == 3
    assert started_order(booted.stdout) == [102]
    assert "CT 103 failed to start" in booted.stderr
    assert "overlaps VE_PRIVATE of CT 102" in booted.stderr
    vzctl("stop-all")
    conf.write_text(conf.read_text().replace('VE_PRIVATE="/vz/private/shared/inner"\n', ""))


def unit_settings() -> dict[str, str]:
    unit = Path(__file__).parents[2] / "contrib/systemd/vz.service"
    return dict(line.split("=", 1) for line in unit.read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def test_the_vz_units_commands_start_and_stop_the_onboot_cts(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """Where systemd does not run (CI, this host), the unit's ExecStart and ExecStop
    command lines are run as given, with the vzctl under test."""
    unit = unit_settings()
    assert unit["Type"] == "oneshot" and unit["RemainAfterExit"] == "yes"
    start, stop = unit["ExecStart"].split(), unit["ExecStop"].split()
    assert start[0] == stop[0] == "/usr/local/sbin/vzctl"  # where contrib/setup.sh links it
    vzctl("create", 101, "--ostemplate", "busybox")
    vzctl("set", 101, "--onboot", "yes", "--save")
    assert started_order(vzctl(*start[1:]).stdout) == [101]
    assert status(vzctl, 101) == "mounted running"
    vzctl(*stop[1:])
    assert status(vzctl, 101) == "unmounted down"
