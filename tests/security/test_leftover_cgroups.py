"""Leftover cgroups and a lost state file (issue 19, item 4), for both profiles.

A CT's group left frozen, a leftover group holding a process that is not the CT's, a
state file removed while the CT runs, and two installations sharing a ``CGROUP_PARENT``:
each gives a clear refusal or a clean recovery, never a hang (every vzctl call has a
timeout), a killed foreign process or a second init.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import PROFILES
from vzcore.ctgroups import group_name
from vzcore.linux import mounts
from vzcore.linux.cgroups import CgroupSet, hierarchies
from vzcore.linux.procfs import ProcessId, namespace_pids
from vzcore.paths import Paths
from vzcore.testing.crash import ct_processes
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

HANG = 90
"""Seconds after which a vzctl call counts as hung (a normal call takes well under 10)."""

# The tests taking this CT depend on the cgroup mode (cgroup.freeze, cgroup.kill on v2):
# the VM subset (cgroup v2 only) runs them for the user-namespace profile, whose v2 code
# paths the privileged one shares, since VM time is dear.
PROFILE_PARAMS = [pytest.param(p, marks=[pytest.mark.vm] if p == "userns" else [])
                  for p in PROFILES]


@pytest.fixture(params=PROFILE_PARAMS)
def ct101(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl) -> int:
    """CT 101 created (stopped) in the ``userns`` or ``privileged`` profile."""
    extra: list[str] = []
    if request.param == "privileged":
        vz_env.write_vz_conf(ALLOW_PRIVILEGED="yes")  # the opt-in an admin must give
        extra = ["--local_uid", "0", "--local_gid", "0"]
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "left101", *extra)
    return 101


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A harmless host process of the test's own, killed by its PID afterwards."""
    process = subprocess.Popen(["sleep", "600"])
    original = own_groups(process.pid)
    try:
        yield process
    finally:
        if process.poll() is None:
            move(process.pid, original)  # out of any group the test is about to remove
        process.kill()
        process.wait()


def own_groups(pid: int) -> list[Path]:
    """The directories of ``pid``'s group in every mounted hierarchy."""
    return [h.directory(h.own) for h in hierarchies(pid)]


def move(pid: int, directories: list[Path]) -> None:
    for directory in directories:
        (directory / "cgroup.procs").write_text(str(pid))


def planned(vz_env: VzEnv, ctid: int) -> CgroupSet:
    """CT ``ctid``'s groups where a start would make them (a leftover is made with
    :meth:`CgroupSet.create`: a bare v1 cpuset group would take no process)."""
    return CgroupSet.plan(vz_env.cgroup_parent, group_name(Paths(vz_env.root), ctid))


def freezers(vz_env: VzEnv, ctid: int) -> list[tuple[Path, str, str, str]]:
    """(group, file, frozen, thawed) for every hierarchy that can freeze CT ``ctid``'s
    group: v1's freezer and any cgroup2 mount (``cgroup.freeze`` needs no controller)."""
    return [(d.directory, "cgroup.freeze", "1", "0") if d.version == 2
            else (d.directory, "freezer.state", "FROZEN", "THAWED")
            for d in planned(vz_env, ctid).dirs if d.version == 2 or "freezer" in d.controllers]


def inits(vz_env: VzEnv, ctid: int) -> set[int]:
    """Processes in CT ``ctid``'s groups that are PID 1 of a PID namespace that is a child
    of the host's (not of one nested in the CT)."""
    return {pid for pid in ct_processes(vz_env, ctid) if len(namespace_pids(pid)) == 2
            and namespace_pids(pid)[-1] == 1}


def assert_untouched(vz_env: VzEnv, vzctl: Vzctl, ctid: int) -> None:
    """A refused start changed nothing: no state, no mount, no process of the CT."""
    assert vzctl("status", ctid, timeout=HANG).stdout.strip() == \
        f"CTID {ctid} exist unmounted down"
    assert not vz_env.state(ctid).exists()
    assert not mounts.mounts_below(vz_env.ct_root(ctid))
    assert not inits(vz_env, ctid)


def assert_clean(vz_env: VzEnv, vzctl: Vzctl, ctid: int) -> None:
    assert vzctl("status", ctid, timeout=HANG).stdout.strip() == \
        f"CTID {ctid} exist unmounted down"
    assert not vz_env.state(ctid).exists()
    assert not any(group.exists() for group in vz_env.ct_cgroup_dirs(ctid))


def test_a_frozen_group_is_refused_or_thawed_never_a_hang(vz_env: VzEnv, vzctl: Vzctl,
                                                          ct101: int) -> None:
    kinds = freezers(vz_env, ct101)
    assert kinds, "no hierarchy can freeze (neither a v1 freezer nor cgroup2)"
    for group, name, frozen, thawed in kinds:
        # A leftover group on no record, frozen: start refuses at once, naming it and the fix.
        group.mkdir(parents=True)
        (group / name).write_text(frozen)
        result = vzctl("start", ct101, check=False, timeout=HANG)
        assert result.returncode == 3, result.stderr
        assert f"cgroup {group} is frozen" in result.stderr
        assert f"{group / name}" in result.stderr, result.stderr  # the thaw command
        assert_untouched(vz_env, vzctl, ct101)
        (group / name).write_text(thawed)
        group.rmdir()

        # The CT's own group frozen while it runs (or left so by a crash): start says it
        # runs, exec refuses instead of freezing with it, stop thaws and stops it.
        vzctl("start", ct101, timeout=HANG)
        (group / name).write_text(frozen)
        again = vzctl("start", ct101, check=False, timeout=HANG)
        assert again.returncode == 32 and "already running" in again.stderr
        joined = vzctl("exec", ct101, "true", check=False, timeout=HANG)
        assert joined.returncode != 0 and f"cgroup {group} is frozen" in joined.stderr
        stopped = vzctl("stop", ct101, timeout=HANG)
        assert "thawed" in stopped.stdout + stopped.stderr
        assert_clean(vz_env, vzctl, ct101)


def test_a_foreign_process_in_the_cts_group_survives_start_and_stop(
        vz_env: VzEnv, vzctl: Vzctl, ct101: int, stranger: subprocess.Popen[bytes]) -> None:
    original = own_groups(stranger.pid)
    leftover = planned(vz_env, ct101)
    leftover.create()
    groups = [d.directory for d in leftover.dirs]
    move(stranger.pid, groups)

    # A leftover group that holds a host process is not reused.
    result = vzctl("start", ct101, check=False, timeout=HANG)
    assert result.returncode == 3, result.stderr
    assert f"{stranger.pid} (sleep)" in result.stderr and "not the CT's" in result.stderr
    assert any(f"cgroup {group} " in result.stderr for group in groups), result.stderr
    assert stranger.poll() is None
    assert_untouched(vz_env, vzctl, ct101)
    move(stranger.pid, original)
    leftover.remove()

    # A host process put into a running CT's group is spared by stop, which names it;
    # the CT's own processes die, and stop finishes once the process is moved out.
    vzctl("start", ct101, timeout=HANG)
    init = next(iter(inits(vz_env, ct101)))
    move(stranger.pid, [d.directory for d in vz_env.cgroups(ct101).dirs])
    stopped = vzctl("stop", ct101, check=False, timeout=HANG)
    assert stopped.returncode != 0
    assert f"{stranger.pid} (sleep)" in stopped.stderr and "left alone" in stopped.stderr
    assert stranger.poll() is None, "stop killed a process that is not the CT's"
    assert init not in ct_processes(vz_env, ct101), "stop left the CT's own init running"
    move(stranger.pid, original)
    # The CT's init is gone: the console daemon, its parent, may have finished the
    # teardown already (docs/system-cts.md); else this stop does.
    finished = vzctl("stop", ct101, check=False, timeout=HANG)
    assert finished.returncode in (0, 31), finished.stderr
    assert stranger.poll() is None
    assert_clean(vz_env, vzctl, ct101)


def test_a_lost_state_file_is_recovered_never_a_second_init(vz_env: VzEnv, vzctl: Vzctl,
                                                            vzlist: Vzctl, ct101: int) -> None:
    vzctl("start", ct101, timeout=HANG)
    first = inits(vz_env, ct101)
    assert len(first) == 1
    # A container in the CT: an init of a PID namespace nested in the CT's, which is
    # neither taken for the CT's init nor counted as a stranger.
    vzctl("exec", ct101, "unshare -p -f sleep 600 </dev/null >/dev/null 2>&1 &", timeout=HANG)
    # exec returns once the shell has put unshare in the background: wait for its child
    deadline = time.monotonic() + 10
    while not (nested := {pid for pid in ct_processes(vz_env, ct101)
                          if len(namespace_pids(pid)) == 3}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nested, "the nested PID namespace was not made"
    vz_env.state(ct101).unlink()

    assert vzctl("status", ct101, timeout=HANG).stdout.strip() == \
        f"CTID {ct101} exist mounted running"
    assert [line.split()[:3:2] for line in vzlist("-H").stdout.splitlines()] == \
        [[str(ct101), "running"]]
    again = vzctl("start", ct101, check=False, timeout=HANG)
    assert again.returncode == 32 and "already running" in again.stderr, again.stderr
    assert inits(vz_env, ct101) == first, "a second init was started"
    assert vzctl("exec", ct101, "echo inside", timeout=HANG).stdout.strip() == "inside"

    vzctl("stop", ct101, timeout=HANG)
    assert all(ProcessId.of(pid) is None for pid in first | nested)
    assert_clean(vz_env, vzctl, ct101)
    assert not mounts.mounts_below(vz_env.ct_root(ct101))


def test_two_installations_with_one_cgroup_parent_share_no_group(
        vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int, tmp_path: Path) -> None:
    other = VzEnv(tmp_path / "other", vz_env.cgroup_parent)
    other.write_vz_conf(CGROUP_PARENT=vz_env.cgroup_parent, STOP_TIMEOUT="20")

    def vzctl_other(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([vzctl_binary(), *map(str, args)], env=other.env,
                                capture_output=True, text=True, timeout=HANG, check=False)
        assert not check or result.returncode == 0, result.stderr
        return result

    vzctl_other("create", 101, "--ostemplate", "busybox")
    try:
        vzctl("start", 101, timeout=HANG)
        vzctl_other("start", 101)
        mine, theirs = vz_env.cgroups(101), other.cgroups(101)
        assert not {d.directory for d in mine.dirs} & {d.directory for d in theirs.dirs}
        assert {d.directory.parent for d in mine.dirs} == {d.directory.parent for d in theirs.dirs}
        their_init = inits(other, 101)
        assert len(their_init) == 1 and inits(vz_env, 101).isdisjoint(their_init)

        vzctl("stop", 101, timeout=HANG)
        assert all(ProcessId.of(pid) is not None for pid in their_init)
        assert vzctl_other("status", 101).stdout.strip() == "CTID 101 exist mounted running"
        assert vzctl("status", 101).stdout.strip() == "CTID 101 exist unmounted down"
    finally:
        vzctl_other("stop", "--fast", 101, check=False)
        vzctl_other("destroy", 101, check=False)
    assert not any(d.exists() for d in other.ct_cgroup_dirs(101))

