"""Acceptance: ``vzctl ubc``, vzlist's beancounter fields, the in-CT view, sample configs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from ubc_helpers import state, ubc

import vzcore_beancounters
from vzcore.linux import cgroups
from vzcore.linux.procfs import ProcessId
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_beancounters.resources import RESOURCES, ROWS
from vzcore_beancounters.table import HEADER_LINE

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

SAMPLES = Path(vzcore_beancounters.__file__).parent / "samples"


def install_samples(vz_env: VzEnv) -> None:
    """What contrib/setup.sh does for /etc/vz/conf."""
    conf_dir = vz_env.root / "etc/vz/conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    for sample in SAMPLES.glob("ve-*.conf-sample"):
        shutil.copy(sample, conf_dir / sample.name)


def memory_usage_pages(vz_env: VzEnv, ctid: int) -> int:
    cg = vz_env.cgroups(ctid)
    name = "memory.usage_in_bytes" if cg.version == 1 else "memory.current"
    value = cg.read_int("memory", name)
    assert value is not None
    return value // 4096


def test_vzctl_ubc_matches_proc_user_beancounters(vz_env: VzEnv, vzctl: Vzctl) -> None:
    install_samples(vz_env)
    vzctl("create", 101, "--ostemplate", "busybox", "--config", "basic")
    vzctl("start", 101)
    text = vzctl("ubc", 101).stdout
    lines = text.splitlines()
    assert lines[0] == "Version: 2.5"
    assert lines[1] == HEADER_LINE
    assert len(lines) == 2 + len(ROWS)
    assert [line[12:24].rstrip() for line in lines[2:]] == list(ROWS)
    assert lines[2].startswith("      101:  kmemsize ")
    assert all(len(line) == len(HEADER_LINE) for line in lines[1:])
    for line in lines[2:]:
        numbers = line[25:].split()
        assert len(numbers) == 5 and all(n.isdigit() for n in numbers)
        # %20lu columns: each number ends on a fixed column.
        assert [line[25 + 21 * i: 25 + 21 * i + 20].strip() for i in range(5)] == numbers
    numproc = next(line for line in lines if line[12:24].strip() == "numproc").split()
    assert numproc[3:5] == ["240", "240"]
    assert vz_env.cgroups(101).read("pids", "pids.max") == "240", "the limit is the kernel's"
    # held tracks reality: numproc is the CT's process count, physpages its memory use.
    data = ubc(vzctl, 101)
    assert data["numproc"]["held"] == len(vz_env.cgroups(101).pids())
    usage = memory_usage_pages(vz_env, 101)
    assert abs(data["physpages"]["held"] - usage) <= usage * 0.10
    vzctl("stop", 101)


def test_held_follows_the_ct_s_processes(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", 101)
    before = ubc(vzctl, 101)["numproc"]["held"]
    vzctl("exec", 101, "for i in 1 2 3 4 5; do sleep 1000 </dev/null >/dev/null 2>&1 & done")
    during = ubc(vzctl, 101)
    assert during["numproc"]["held"] == before + 5 == len(vz_env.cgroups(101).pids())
    assert during["numfile"]["held"] >= 5 * 3  # each sleep holds its stdio
    vzctl("exec", 101, "kill $(pidof sleep)")
    deadline = time.monotonic() + 10
    while ubc(vzctl, 101)["numproc"]["held"] != before and time.monotonic() < deadline:
        time.sleep(0.05)
    after = ubc(vzctl, 101)["numproc"]
    assert after["held"] == before
    assert after["maxheld"] >= before + 5
    vzctl("stop", 101)


def test_the_ct_sees_its_own_rows(vz_env: VzEnv, vzctl: Vzctl, any_ct: int) -> None:
    vzctl("create", 102, "--ostemplate", "busybox")
    vzctl("set", 101, "--numproc", "77", "--save")
    vzctl("start", 101)
    vzctl("start", 102)
    inside = vzctl("exec", 101, "cat /dev/user_beancounters").stdout.splitlines()
    assert inside[:2] == ["Version: 2.5", HEADER_LINE]
    assert len(inside) == 2 + len(ROWS)
    assert inside[2].startswith("      101:  kmemsize")
    assert "102:" not in "\n".join(inside)
    numproc = next(line.split() for line in inside if line[12:24].strip() == "numproc")
    assert numproc[3:5] == ["77", "77"]
    assert int(numproc[1]) >= 2  # init and the cat, at least
    # Fresh on every read, and read-only.
    vzctl("set", 101, "--numproc", "88")
    again = vzctl("exec", 101, "grep numproc /dev/user_beancounters").stdout.split()
    assert again[3:5] == ["88", "88"]
    denied = vzctl("exec", 101, "echo x > /dev/user_beancounters", check=False)
    assert denied.returncode != 0
    assert vzctl("exec", 102, "grep -c numproc /dev/user_beancounters").stdout.strip() == "1"
    # One daemon serves both CTs; it leaves when the last CT stops.
    pidfile = vz_env.root / "run/vz/beancounters/view.pid"
    pid, start_time = (int(w) for w in pidfile.read_text().split())
    daemon = ProcessId(pid, start_time)
    assert daemon.is_alive()
    # in a group of its own below CGROUP_PARENT (not the calling vzctl's session)
    for h in cgroups.hierarchies(pid):
        parent, _, name = h.own.rpartition("/")
        assert parent.endswith("/" + vz_env.cgroup_parent) and name.startswith("daemon-view")
    vzctl("stop", 101)
    assert daemon.is_alive()
    assert vzctl("exec", 102, "head -1 /dev/user_beancounters").stdout == "Version: 2.5\n"
    vzctl("stop", 102)
    deadline = time.monotonic() + 10
    while daemon.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not daemon.is_alive()
    assert not pidfile.exists()
    assert not [g for d in vz_env.cgroup_dirs() if d.exists() for g in d.glob("daemon-*")]


def test_vzlist_fields_table_and_json(vz_env: VzEnv, vzlist: Vzctl, vzctl: Vzctl,
                                      busybox_ct: int) -> None:
    vzctl("create", 102, "--ostemplate", "busybox")
    vzctl("set", 101, "--numproc", "40:50", "--save")
    vzctl("set", 102, "--numproc", "60", "--ram", "256M", "--save")
    vzctl("start", 101)
    fields = ",".join(["ctid", "numproc", "numproc.m", "numproc.b", "numproc.l", "numproc.f",
                       "numfile.l"])
    table = vzlist("-a", "-H", "-o", fields).stdout.splitlines()
    running = table[0].split()
    assert running[0] == "101" and running[3:6] == ["40", "50", "0"]
    assert int(running[1]) == len(vz_env.cgroups(101).pids())
    assert running[6] == str(2**63 - 1)  # numbers are never cut to the column width
    assert table[1].split() == ["102", "-", "-", "60", "60", "-", str(2**63 - 1)]
    data = json.loads(vzlist("-a", "-j").stdout)
    by_ctid = {row["ctid"]: row for row in data}
    for resource in RESOURCES:
        assert set(by_ctid[101][resource.name]) == {"held", "maxheld", "barrier", "limit", "failcnt"}
    assert by_ctid[102]["numproc"] == {"held": 0, "maxheld": 0, "barrier": 60, "limit": 60,
                                       "failcnt": 0}
    assert by_ctid[102]["physpages"]["limit"] == 65536
    assert by_ctid[102]["vswap"] is True and by_ctid[101]["vswap"] is False
    # vzlist reads only what it shows: the default columns cost one pids.current read.
    peaks = vz_env.root / "run/vz/beancounters/101.peaks"
    peaks.unlink(missing_ok=True)
    vzlist("-o", "ctid,numproc,hostname")
    assert set(json.loads(peaks.read_text())) <= {"numproc"}
    header = vzlist("-o", "ctid,numproc,physpages.l,kmemsize.f,swappages").stdout.splitlines()[0]
    assert header.split() == ["CTID", "NPROC", "PHYSP.L", "KMEMSIZE.F", "SWAPP"]
    vzctl("stop", 101)


def test_samples_apply_at_create(vz_env: VzEnv, vzctl: Vzctl) -> None:
    install_samples(vz_env)
    vzctl("create", 101, "--ostemplate", "busybox", "--config", "vswap-256m")
    config = vz_env.conf(101).read_text()
    assert 'PHYSPAGES="0:256M"' in config and 'SWAPPAGES="0:512M"' in config
    assert 'ORIGIN_SAMPLE="vswap-256m"' in config
    vzctl("start", 101)
    cg = vz_env.cgroups(101)
    name = "memory.limit_in_bytes" if cg.version == 1 else "memory.max"
    assert cg.read_int("memory", name) == 256 * 1024 * 1024
    data = ubc(vzctl, 101)
    assert data["physpages"]["limit"] == 65536 and data["swappages"]["limit"] == 131072
    assert data["vmguarpages"]["barrier"] == 65536 + 131072  # VSwap's implicit values
    assert data["lockedpages"]["barrier"] == 65536
    assert state(vz_env, 101).init is not None
    vzctl("stop", 101)
    missing = vzctl("create", 102, "--ostemplate", "busybox", "--config", "nosuch", check=False)
    assert missing.returncode == 82 and "nosuch" in missing.stderr
