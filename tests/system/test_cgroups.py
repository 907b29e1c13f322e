"""vzcore.linux.cgroups on the real kernel: create, attach, limits, counters, kill, removal.

The same tests run on this host (cgroup v1 controllers beside a cgroup2 mount) and, marked
``vm``, under Debian 12's stock kernel with cgroup v2 only (``pytest --kernel vm``); the
``cgroup2`` ones check what only v2 has (controllers enabled down the parent chain, the
no-internal-process rule).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from vzcore.errors import VzError
from vzcore.linux import cgroups
from vzcore.linux.cgroups import CgroupSet
from vzcore.testing.pytest_plugin import VzEnv

pytestmark = [pytest.mark.root, pytest.mark.vm]

# (controller, v1 file, v2 file) for what these tests read and write
MEMORY_LIMIT = ("memory", "memory.limit_in_bytes", "memory.max")
MEMORY_USAGE = ("memory", "memory.usage_in_bytes", "memory.current")
CPU_WEIGHT = ("cpu", "cpu.shares", "cpu.weight")


def file_of(cg: CgroupSet, spec: tuple[str, str, str]) -> tuple[str, str]:
    controller, v1, v2 = spec
    return controller, v1 if cg.version == 1 else v2


def offered() -> set[str]:
    """Controllers this host's hierarchies offer (probed, for the assertions below)."""
    found: set[str] = set()
    for h in cgroups.hierarchies():
        found |= h.controllers
    return found


@pytest.fixture
def cg(vz_env: VzEnv) -> Iterator[CgroupSet]:
    """A created group ``ct1`` below the test's cgroup parent; killed and removed after."""
    group = CgroupSet.plan(vz_env.cgroup_parent, "ct1")
    group.create()
    yield group
    group.kill()
    group.remove()


def spawn_in(cg: CgroupSet, argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
    """Start ``argv`` already inside ``cg`` (it joins between fork and exec)."""
    return subprocess.Popen(argv, preexec_fn=lambda: cg.attach(os.getpid()), text=True,
                            **kwargs)  # type: ignore[call-overload]


def test_create_makes_the_group_in_every_hierarchy_with_the_controllers(
        vz_env: VzEnv, cg: CgroupSet) -> None:
    found = cgroups.hierarchies()
    assert {d.key for d in cg.dirs} == {h.key for h in found}
    for d, h in zip(cg.dirs, found, strict=True):
        expected = h.directory(cgroups.resolve_parent(vz_env.cgroup_parent, h)) / "ct1"
        assert d.directory == expected and expected.is_dir()
    assert cg.version == (2 if cgroups.mode() == "v2" else 1)
    for controller in {"memory", "pids", "cpu"} & offered():
        assert cg.has(controller), f"{controller} is offered by the host but not in the group"
        name = {"memory": "memory.stat", "pids": "pids.max", "cpu": "cpu.stat"}[controller]
        assert cg.path(controller, name).exists()
    assert cg.exists()
    assert CgroupSet.from_json(cg.to_json()) == cg


def test_attach_moves_processes_and_the_counters_follow(cg: CgroupSet) -> None:
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        cg.attach(sleeper.pid)
        joined = spawn_in(cg, ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; "
                                           "echo counted; exec sleep 600"],
                          stdout=subprocess.PIPE)
        # The CPU it used is charged once it ran: wait for that, not for a guessed time.
        assert joined.stdout is not None and joined.stdout.readline() == "counted\n"
        assert cg.pids() == {sleeper.pid, joined.pid}
        dirs = {d.key: d.directory for d in cg.dirs}
        for pid in (sleeper.pid, joined.pid):
            for h in cgroups.hierarchies(pid):  # what /proc/PID/cgroup says, per hierarchy
                assert h.directory(h.own) == dirs[h.key], (pid, h)
        if cg.has("pids"):
            assert cg.read("pids", "pids.current") == "2"
        assert cg.task_count() == 2
        if cg.has("memory"):
            assert int(cg.read(*file_of(cg, MEMORY_USAGE))) > 0
        if cg.version == 2:
            usage = dict(line.split() for line in cg.read("cpu", "cpu.stat").splitlines())
            assert int(usage["usage_usec"]) > 0
        elif cg.has("cpuacct"):
            assert int(cg.read("cpuacct", "cpuacct.usage")) > 0
    finally:
        cg.kill()
        sleeper.wait()
    assert cg.pids() == set()


def test_pids_limit_stops_forks(cg: CgroupSet) -> None:
    if not cg.has("pids"):
        pytest.skip("the host offers no pids controller")
    cg.write("pids", "pids.max", "4")
    assert cg.read("pids", "pids.max") == "4"
    shell = spawn_in(cg, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 600 & done; exec sleep 600"],
                     stderr=subprocess.DEVNULL)
    try:
        events = {}
        for _ in range(1200):  # the shell forks as fast as the kernel lets it
            events = dict(line.split() for line in cg.read("pids", "pids.events").splitlines())
            if int(events.get("max", 0)) > 0:
                break
            time.sleep(0.05)
        assert int(events["max"]) > 0, "no fork was refused"
        assert int(cg.read("pids", "pids.current")) <= 4
    finally:
        cg.kill()
        shell.wait()


def test_memory_limit_kills_what_exceeds_it(cg: CgroupSet) -> None:
    if not cg.has("memory"):
        pytest.skip("the host offers no memory controller")
    limit = 48 << 20
    cg.write(*file_of(cg, MEMORY_LIMIT), str(limit))
    assert int(cg.read(*file_of(cg, MEMORY_LIMIT))) == limit
    if cg.version == 2 and cg.path("memory", "memory.swap.max").exists():
        cg.write("memory", "memory.swap.max", "0")
    hog = spawn_in(cg, [sys.executable, "-S", "-c", "b = b'x' * (160 << 20); print(len(b))"],
                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = hog.communicate(timeout=300)
    assert hog.returncode == -9 and out == "", "160 MB fitted below a 48 MB limit"
    if cg.version == 2:
        events = dict(line.split() for line in cg.read("memory", "memory.events").splitlines())
        assert int(events["oom_kill"]) >= 1
    else:
        assert int(cg.read("memory", "memory.failcnt")) > 0


def test_cpu_weight_and_quota(cg: CgroupSet) -> None:
    if not cg.has("cpu"):
        pytest.skip("the host offers no cpu controller")
    weight = file_of(cg, CPU_WEIGHT)
    value = "50" if cg.version == 2 else "512"
    cg.write(*weight, value)
    assert cg.read(*weight) == value
    if cg.version == 2:
        cg.write("cpu", "cpu.max", "10000 100000")
        assert cg.read("cpu", "cpu.max") == "10000 100000"
    else:
        cg.write("cpu", "cpu.cfs_period_us", "100000")
        cg.write("cpu", "cpu.cfs_quota_us", "10000")
    # Busy for several periods at a tenth of a CPU: the scheduler must throttle it.
    busy = spawn_in(cg, ["timeout", "1", "sh", "-c", "while :; do :; done"])
    busy.wait(timeout=120)
    stat = dict(line.split() for line in cg.read("cpu", "cpu.stat").splitlines())
    assert int(stat["nr_throttled"]) > 0


def test_kill_empties_nested_groups_and_remove_deletes_them(cg: CgroupSet) -> None:
    family = spawn_in(cg, ["sh", "-c", "sleep 600 & sleep 600 & (sleep 600 &); wait"])
    inner_dirs = []
    for d in cg.dirs:
        inner = d.directory / "inner"
        inner.mkdir()
        inner_dirs.append(inner)
        if d.version == 1 and "cpuset" in d.controllers:  # a new v1 cpuset group is empty
            for name in ("cpuset.cpus", "cpuset.mems"):
                (inner / name).write_text((d.directory / name).read_text())
    lone = subprocess.Popen(["sleep", "600"])
    for inner in inner_dirs:
        (inner / "cgroup.procs").write_text(str(lone.pid))
    try:
        for _ in range(1200):
            if len(cg.pids()) >= 5:
                break
            time.sleep(0.05)
        assert lone.pid in cg.pids() and family.pid in cg.pids() and len(cg.pids()) >= 5
        cg.kill()
        assert cg.pids() == set()
    finally:
        family.wait(timeout=60)
        lone.wait(timeout=60)
    cg.remove()
    assert not cg.exists()
    assert not any(inner.exists() for inner in inner_dirs)
    cg.remove()  # removing what is gone is fine


@pytest.mark.cgroup2
def test_v2_enables_controllers_down_the_parent_chain(vz_env: VzEnv) -> None:
    group = CgroupSet.plan(f"{vz_env.cgroup_parent}/a/b", "ct1")
    group.create()
    try:
        (unified,) = group.dirs
        wanted = {"memory", "pids", "cpu"} & offered()
        assert wanted, "a v2 host offers memory, pids and cpu"
        own = cgroups.hierarchies()[0]
        top = own.directory(own.own)
        chain = [unified.directory.parent]
        while chain[-1] != top:
            chain.append(chain[-1].parent)
        for ancestor in chain:
            enabled = set((ancestor / "cgroup.subtree_control").read_text().split())
            assert wanted <= enabled, f"{ancestor}: {enabled}"
        for name in ("memory.max", "pids.max", "cpu.weight", "cpu.max"):
            assert unified.file(name).exists(), name
        assert (unified.directory.parent / "cgroup.type").read_text().strip() == "domain"
    finally:
        group.remove()
        for d in group.dirs:
            d.directory.parent.rmdir()  # b, then a: the CT's parents are not the CT's to remove
            d.directory.parent.parent.rmdir()


@pytest.mark.cgroup2
def test_v2_parent_with_processes_of_its_own_is_refused_with_the_fix(vz_env: VzEnv) -> None:
    parent = CgroupSet.plan(vz_env.cgroup_parent, "busy")
    parent.create()
    occupant = spawn_in(parent, ["sleep", "600"])
    try:
        child = CgroupSet.plan(f"{vz_env.cgroup_parent}/busy", "ct1")
        with pytest.raises(VzError, match=r"processes of its own.*CGROUP_PARENT"):
            child.create()
        busy = parent.dirs[0].directory
        assert (busy / "cgroup.subtree_control").read_text().split() == [], "nothing half-enabled"
        assert (busy / "cgroup.type").read_text().strip() == "domain"
    finally:
        parent.kill()
        occupant.wait()
    for d in child.dirs:
        if d.directory.exists():
            d.directory.rmdir()
    parent.remove()


@pytest.mark.cgroup1
def test_v1_cpuset_group_inherits_cpus_and_memory_nodes(cg: CgroupSet) -> None:
    if not cg.has("cpuset"):
        pytest.skip("the host has no v1 cpuset hierarchy")
    parent = cg.path("cpuset", "cpuset.cpus").parent.parent
    for name in ("cpuset.cpus", "cpuset.mems"):
        assert cg.read("cpuset", name) == (parent / name).read_text().strip() != ""
    sleeper = spawn_in(cg, ["sleep", "600"])  # an empty cpuset would refuse it
    try:
        assert sleeper.pid in cg.pids()
    finally:
        cg.kill()
        sleeper.wait()
