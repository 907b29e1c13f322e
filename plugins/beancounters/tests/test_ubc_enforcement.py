"""Acceptance: beancounters enforced on the real kernel, seen from inside a busybox CT.

Each test sets limits the way an admin would (``vzctl set --save``), starts the CT, does
inside it what the limit must stop, and checks the kernel's verdict and the counters
``vzctl ubc`` reports.  They run on cgroup v1 here and on v2 under vm-run.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from ubc_helpers import MIB, PAGE, state, ubc

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def test_fork_bomb_stops_at_numproc(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("create", 102, "--ostemplate", "busybox")
    vzctl("set", 101, "--numproc", "40:40", "--save")
    vzctl("start", 101)
    bomb = vzctl("exec", 101, "i=0; while [ $i -lt 200 ]; do "
                 "sleep 1000 </dev/null >/dev/null 2>&1 & i=$((i+1)); done", check=False)
    assert bomb.returncode != 0
    assert "fork" in bomb.stderr
    cg = vz_env.cgroups(101)
    counters = ubc(vzctl, 101)["numproc"]
    assert counters["held"] == len(cg.pids()) <= 40
    assert counters["held"] >= 35  # the sleeps are still there
    assert counters["maxheld"] == 40
    assert counters["failcnt"] >= 1
    assert counters["barrier"] == counters["limit"] == 40
    # The host and other CTs go on: the host forks, a second CT starts and runs commands.
    assert subprocess.run(["true"], check=False).returncode == 0
    vzctl("start", 102)
    assert vzctl("exec", 102, "echo alive").stdout == "alive\n"
    assert ubc(vzctl, 102)["numproc"]["failcnt"] == 0
    vzctl("stop", 102)
    vzctl("stop", 101)


def test_memory_hog_is_held_at_ram_and_only_it_dies(vz_env: VzEnv, vzctl: Vzctl,
                                                     busybox_ct: int) -> None:
    vzctl("create", 102, "--ostemplate", "busybox")
    vzctl("set", 101, "--ram", "64M", "--swap", "0", "--save")
    vzctl("start", 101)
    vzctl("start", 102)
    other_init = state(vz_env, 102).init
    # dd's buffer is one block: 100 MiB of anonymous memory, more than the CT's RAM.
    hog = vzctl("exec", 101, "dd if=/dev/zero of=/dev/null bs=100M count=1; echo status=$?",
                check=False)
    assert "status=137" in hog.stdout  # SIGKILLed by the CT's own OOM killer
    counters = ubc(vzctl, 101)
    assert counters["physpages"]["limit"] == 64 * MIB // PAGE
    assert counters["physpages"]["maxheld"] <= 64 * MIB // PAGE
    assert counters["physpages"]["maxheld"] >= 60 * MIB // PAGE
    assert counters["physpages"]["failcnt"] > 0
    assert counters["oomguarpages"]["failcnt"] >= 1  # OOM kills in the CT
    assert "running" in vzctl("status", 101).stdout  # its init survived
    assert other_init is not None and other_init.is_alive()
    assert ubc(vzctl, 102)["oomguarpages"]["failcnt"] == 0
    # Memory that cannot be reclaimed (a /dev/shm file, no swap) is held at the limit too.
    vzctl("exec", 101, "dd if=/dev/zero of=/dev/shm/fill bs=1M count=100", check=False)
    counters = ubc(vzctl, 101)
    assert counters["physpages"]["maxheld"] <= 64 * MIB // PAGE
    assert counters["shmpages"]["held"] >= 40 * MIB // PAGE
    assert "running" in vzctl("status", 101).stdout
    vzctl("stop", 101)
    vzctl("stop", 102)


def test_fifth_pty_fails_with_numpty_4(vzctl: Vzctl, any_ct: int) -> None:
    vzctl("set", 101, "--numpty", "4", "--save")
    vzctl("start", 101)
    four = vzctl("exec", 101, "exec 3<>/dev/ptmx 4<>/dev/ptmx 5<>/dev/ptmx 6<>/dev/ptmx; "
                 "grep numpty /dev/user_beancounters")
    assert four.stdout.split()[:4] == ["numpty", "4", "4", "4"]
    fifth = vzctl("exec", 101, "exec 3<>/dev/ptmx 4<>/dev/ptmx 5<>/dev/ptmx 6<>/dev/ptmx; "
                  "exec 7<>/dev/ptmx && echo fifth-opened", check=False)
    assert fifth.returncode != 0
    assert "fifth-opened" not in fifth.stdout
    assert "No space left on device" in fifth.stderr
    vzctl("stop", 101)


SHMGET = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for size in sys.argv[1:]:
    r = libc.shmget(0, int(size), 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
    print(size, "ok" if r >= 0 else os.strerror(ctypes.get_errno()))
"""


def test_shmpages_limits_sysv_and_posix_shared_memory(vz_env: VzEnv, vzctl: Vzctl,
                                                      any_ct: int) -> None:
    vzctl("set", 101, "--shmpages", "256", "--save")  # 1 MiB
    vzctl("start", 101)
    assert vzctl("exec", 101, "cat /proc/sys/kernel/shmall /proc/sys/kernel/shmmax").stdout.split() \
        == ["256", str(MIB)]
    # SysV segments in the CT's IPC namespace: two of 512 KiB fit, a third does not, and no
    # single segment may exceed the whole allowance.
    init = state(vz_env, 101).init
    assert init is not None
    segments = subprocess.run(
        ["nsenter", "--target", str(init.pid), "--ipc", "/usr/bin/python3", "-c", SHMGET,
         str(512 * 1024), str(512 * 1024), str(512 * 1024), str(2 * MIB)],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in segments] == [
        "ok", "ok", "No space left on device", "Invalid argument"]
    # The host's own IPC namespace is untouched.
    with open("/proc/sys/kernel/shmall") as f:
        assert int(f.read()) > 256
    # POSIX shared memory lives on /dev/shm, sized to the same allowance.
    fill = vzctl("exec", 101, "dd if=/dev/zero of=/dev/shm/x bs=64K count=64", check=False)
    assert "No space left on device" in fill.stderr
    vzctl("stop", 101)


def test_numfile_stops_a_process_opening_too_many_files(vzctl: Vzctl, any_ct: int) -> None:
    vzctl("set", 101, "--numfile", "32", "--save")
    vzctl("start", 101)
    assert vzctl("exec", 101, "ulimit -n").stdout.strip() == "32"
    opened = vzctl("exec", 101, "i=3; while [ $i -lt 100 ]; do "
                   "eval \"exec $i</dev/null\" && echo $i; i=$((i+1)); done", check=False)
    numbers = [int(n) for n in opened.stdout.split()]
    assert numbers and max(numbers) < 32
    assert max(numbers) >= 20  # it was the limit that stopped it, not something else
    assert "Too many open files" in opened.stderr
    vzctl("stop", 101)


def test_barrier_limit_validation_names_ct_and_parameter(vz_env: VzEnv, vzctl: Vzctl,
                                                         busybox_ct: int) -> None:
    before = vz_env.conf(101).read_text()
    for option, value, words in (("--numproc", "50:40", "above limit"),
                                 ("--numproc", "-5", "not a number"),
                                 ("--kmemsize", "12Q", "not a number"),
                                 ("--numfile", "10K", "without a suffix"),
                                 ("--ram", "lots", "not a number")):
        result = vzctl("set", 101, option, value, "--save", check=False)
        assert result.returncode == 21, result.stderr
        assert "CT 101" in result.stderr and option in result.stderr and words in result.stderr
    assert vz_env.conf(101).read_text() == before
    # A hand-edited config is refused at start, naming the key.
    vz_env.conf(101).write_text(before + 'NUMPROC="40:30"\n')
    refused = vzctl("start", 101, check=False)
    assert refused.returncode == 21
    assert "NUMPROC" in refused.stderr and "CT 101" in refused.stderr
    assert not vz_env.state(101).exists()


def test_live_change_of_numproc_and_ram(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("set", 101, "--ram", "128M", "--swap", "0", "--save")
    vzctl("start", 101)
    init = state(vz_env, 101).init
    # 48 MiB fits in 128 MiB of RAM ...
    assert "status=0" in vzctl("exec", 101, "dd if=/dev/zero of=/dev/null bs=48M count=1 "
                               "2>/dev/null; echo status=$?").stdout
    # ... not in 32 MiB, set while the CT runs, without --save and without a restart.
    vzctl("set", 101, "--ram", "32M", "--numproc", "10")
    assert "status=137" in vzctl("exec", 101, "dd if=/dev/zero of=/dev/null bs=48M count=1 "
                                 "2>/dev/null; echo status=$?", check=False).stdout
    bomb = vzctl("exec", 101, "i=0; while [ $i -lt 50 ]; do "
                 "sleep 1000 </dev/null >/dev/null 2>&1 & i=$((i+1)); done", check=False)
    assert "fork" in bomb.stderr
    # A later live change of another key keeps what runs (not the config file's values).
    vzctl("set", 101, "--hostname", "web1")
    counters = ubc(vzctl, 101)
    assert counters["numproc"]["held"] <= 10 and counters["numproc"]["maxheld"] == 10
    assert counters["numproc"]["limit"] == 10
    assert counters["physpages"]["limit"] == 32 * MIB // PAGE
    assert vz_env.cgroups(101).read_int("pids", "pids.max") == 10
    assert state(vz_env, 101).init == init  # the same init: no restart happened
    assert 'PHYSPAGES="0:32768"' in vz_env.conf(101).read_text()  # not saved
    vzctl("exec", 101, "kill $(pidof sleep)", check=False)
    # Back to the saved value: the running CT gets it although the config already has it.
    vzctl("set", 101, "--numproc", "unlimited", "--ram", "128M")
    assert "status=0" in vzctl("exec", 101, "dd if=/dev/zero of=/dev/null bs=48M count=1 "
                               "2>/dev/null; echo status=$?").stdout
    assert ubc(vzctl, 101)["numproc"]["limit"] == 2**63 - 1
    vzctl("stop", 101)


def test_rlimits_are_inherited_by_init_and_given_to_exec(vz_env: VzEnv, vzctl: Vzctl,
                                                         any_ct: int) -> None:
    vzctl("set", 101, "--numfile", "100:200", "--numsiginfo", "64", "--save")
    vzctl("start", 101)
    init = state(vz_env, 101).init
    assert init is not None
    with open(f"/proc/{init.pid}/limits") as f:
        limits = {line[:26].strip(): line[26:].split()[:2] for line in f.readlines()[1:]}
    assert limits["Max open files"][0] == "100"
    assert limits["Max pending signals"] == ["64", "64"]
    assert vzctl("exec", 101, "ulimit -n; ulimit -i").stdout.split() == ["100", "64"]
    vzctl("stop", 101)


def test_unlimited_ct_leaves_the_kernel_defaults(vz_env: VzEnv, vzctl: Vzctl,
                                                 busybox_ct: int) -> None:
    vzctl("start", 101)
    cg = vz_env.cgroups(101)
    memory = "memory.limit_in_bytes" if cg.version == 1 else "memory.max"
    assert cg.read_int("memory", memory) == 2**63 - 1
    assert cg.read_int("pids", "pids.max") == 2**63 - 1
    assert "max=" not in vzctl("exec", 101, "grep devpts /proc/mounts").stdout
    vzctl("stop", 101)


def test_stop_and_start_again_keep_no_state(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("set", 101, "--numproc", "20", "--save")
    vzctl("start", 101)
    vzctl("exec", 101, "sleep 0.1 & sleep 0.1 & wait")
    vzctl("stop", 101)
    peaks = vz_env.root / "run/vz/beancounters/101.peaks"
    assert not peaks.exists()
    vzctl("start", 101)
    assert ubc(vzctl, 101)["numproc"]["failcnt"] == 0
    vzctl("stop", 101)
    assert os.path.exists(vz_env.root / "etc/vz/conf/101.conf")
