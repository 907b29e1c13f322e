"""In-CT views through the shared lxcfs, on real CTs: memory, CPUs, uptime and load of the
CT itself; one daemon for all CTs; a killed lxcfs repaired by the next vzctl command in
CTs that keep running; nothing left after the last stop; --lxcfs refused without lxcfs."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.linux.procfs import ProcessId
from vzcore.paths import Paths
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_lxcfs import daemon

MISSING = [what for what, ok in (("the lxcfs program (Debian package lxcfs)",
                                  daemon.binary() is not None),
                                 ("/dev/fuse (the fuse module)", os.path.exists("/dev/fuse")))
           if not ok]
pytestmark = [pytest.mark.root, pytest.mark.needs("busybox"),
              pytest.mark.skipif(bool(MISSING), reason=f"needs {' and '.join(MISSING)}")]

PAGE = 4096


def meminfo(vzctl: Vzctl, ctid: int) -> dict[str, int]:
    text = vzctl("exec", ctid, "cat /proc/meminfo").stdout
    return {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines() if line.strip()}


def physpages(vzctl: Vzctl, ctid: int) -> tuple[int, int]:
    """held and limit of the CT's physpages, in pages, from vzctl ubc."""
    for line in vzctl("ubc", ctid).stdout.splitlines():
        words = line.replace(f"{ctid}:", "").split()
        if words and words[0] == "physpages":
            return int(words[1]), int(words[4])
    raise AssertionError("no physpages row in vzctl ubc")


def where(vz_env: VzEnv) -> daemon.Place:
    return daemon.place(Paths.from_environment(str(vz_env.root)).run_dir)


def lxcfs_processes(place: daemon.Place) -> list[int]:
    """lxcfs processes serving this installation's mount point."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"lxcfs") and str(place.mountpoint).encode() in argv:
            found.append(int(entry))
    return found


def kill_daemon(place: daemon.Place) -> None:
    pid, start_time = (int(w) for w in place.daemon_file.read_text().split())
    os.kill(pid, signal.SIGKILL)
    process = ProcessId(pid, start_time)
    while process.is_alive():  # no timing: the kernel makes the process a zombie, then reaps
        time.sleep(0.01)


def daemon_groups(pid: int, vz_env: VzEnv) -> set[str]:
    """The group names (tag cut off) of process ``pid`` in every hierarchy, each asserted
    to be right below the test's cgroup parent."""
    from vzcore.linux import cgroups

    found = set()
    for h in cgroups.hierarchies(pid):
        parent, _, name = h.own.rpartition("/")
        assert parent.endswith("/" + vz_env.cgroup_parent), h.own
        found.add(name.rsplit("-", 1)[0])
    return found


def sysinfo_minutes(line: str) -> int:
    """Minutes of busybox's ``up 2 days,  3:10,`` / ``up 5 min,``."""
    found = re.search(r"up\s+(?:(\d+) days?,\s+)?(?:(\d+):(\d+)|(\d+) min)", line)
    assert found, line
    days, hours, minutes, only = (int(g) if g else 0 for g in found.groups())
    return days * 1440 + hours * 60 + minutes + only


def stale(vzctl: Vzctl, ctid: int) -> bool:
    result = vzctl("exec", ctid, "cat /proc/uptime", check=False)
    return result.returncode != 0 and "not connected" in result.stderr


def uptime(vzctl: Vzctl, ctid: int) -> float:
    return float(vzctl("exec", ctid, "cat /proc/uptime").stdout.split()[0])


def check_own_views(vzctl: Vzctl, ctid: int, ram_kb: int) -> None:
    """The CT's /proc shows its own RAM (agreeing with physpages), uptime and tasks."""
    info = meminfo(vzctl, ctid)
    held, limit = physpages(vzctl, ctid)
    # what free/top show and what the beancounters say agree: the same cgroup files
    assert info["MemTotal"] == ram_kb == limit * PAGE // 1024
    used_kb = info["MemTotal"] - info["MemFree"]
    assert abs(used_kb - held * PAGE // 1024) < 32 * 1024, (used_kb, held)
    top = vzctl("exec", ctid, "top -b -n1").stdout.splitlines()
    used, free = (int(w.rstrip("K")) for w in top[0].split()[1:4:2])
    assert abs(used + free - ram_kb) < 1024, top[0]      # top's Mem line: the CT's RAM
    own = uptime(vzctl, ctid)
    assert own < float(Path("/proc/uptime").read_text().split()[0])
    # busybox's uptime asks sysinfo(2), which the CT's time namespace shifts
    assert abs(sysinfo_minutes(vzctl("exec", ctid, "uptime").stdout) - own / 60) <= 1
    loadavg = vzctl("exec", ctid, "cat /proc/loadavg").stdout.split()
    host_threads = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    assert len(loadavg) == 5 and int(loadavg[3].split("/")[1]) < host_threads  # its own tasks


@pytest.mark.vm
def test_a_ct_sees_its_own_memory_uptime_and_load_and_survives_a_killed_lxcfs(
        vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    """The cgroup v2 VM runs this one (a few vzctl calls: each costs seconds there)."""
    vzctl("set", busybox_ct, "--ram", "512M", "--save")
    vzctl("start", busybox_ct)
    place = where(vz_env)
    check_own_views(vzctl, busybox_ct, 512 * 1024)
    kill_daemon(place)
    assert stale(vzctl, busybox_ct)
    assert vzctl("status", busybox_ct).stdout.strip().endswith("running")
    assert meminfo(vzctl, busybox_ct)["MemTotal"] == 512 * 1024
    vzctl("stop", busybox_ct)
    assert lxcfs_processes(place) == [] and not mounts.mounts_below(vz_env.root)
    assert not place.directory.exists()


def test_one_lxcfs_serves_both_profiles_and_is_repaired_in_every_running_ct(
        vz_env: VzEnv, vzctl: Vzctl) -> None:
    vz_env.allow_privileged()
    vzctl("create", 101, "--ostemplate", "busybox")                     # user namespace
    vzctl("create", 102, "--ostemplate", "busybox", "--local_uid", "0", "--local_gid", "0")
    vzctl("set", 101, "--ram", "512M", "--cpus", "1", "--save")
    vzctl("set", 102, "--ram", "256M", "--save")
    vzctl("start", 101)
    vzctl("start", 102)
    place = where(vz_env)
    assert len(lxcfs_processes(place)) == 1, "one lxcfs serves every CT"
    # out of vzctl's (a login session's) groups: in its own, below CGROUP_PARENT
    assert daemon_groups(lxcfs_processes(place)[0], vz_env) == {"daemon-lxcfs"}
    check_own_views(vzctl, 101, 512 * 1024)
    check_own_views(vzctl, 102, 256 * 1024)
    # CPUs: --cpus 1 gives CT 101 one CPU of its cpuset; nproc, /proc/stat, cpuinfo agree
    assert vzctl("exec", 101, "nproc").stdout.strip() == "1"
    stat_cpus = [w for w in vzctl("exec", 101, "cat /proc/stat").stdout.split()
                 if w.startswith("cpu") and w != "cpu"]
    assert len(stat_cpus) == 1
    assert vzctl("exec", 101, "grep -c ^processor /proc/cpuinfo").stdout.strip() == "1"
    # a mount namespace of the CT's own (as systemd makes for PrivateTmp= services)
    vzctl("exec", 101, "setsid unshare -m sleep 600 </dev/null >/dev/null 2>&1 &")
    inner = vzctl("exec", 101, "pidof sleep").stdout.split()[0]

    # lxcfs killed: the CTs' files fail; the next vzctl status restores them in both
    kill_daemon(place)
    assert stale(vzctl, 101) and stale(vzctl, 102)
    assert vzctl("status", 101).stdout.strip().endswith("running")
    assert not stale(vzctl, 101) and not stale(vzctl, 102)
    assert meminfo(vzctl, 102)["MemTotal"] == 256 * 1024
    nested = vzctl("exec", 101, f"nsenter -t {inner} -m head -1 /proc/meminfo").stdout
    assert nested.split()[1] == str(512 * 1024)
    # killed again: the next start (of another CT) restores the running ones too
    kill_daemon(place)
    vzctl("create", 103, "--ostemplate", "busybox", "--lxcfs", "no")
    vzctl("start", 103)
    assert not stale(vzctl, 101) and not stale(vzctl, 102)
    assert len(lxcfs_processes(place)) == 1
    # --lxcfs no: the host's own files
    assert meminfo(vzctl, 103)["MemTotal"] == meminfo_host()["MemTotal"]
    # killed once more: vzlist repairs too, and shows which CTs have views
    kill_daemon(place)
    listed = vzctl("-H", "-o", "ctid,lxcfs", binary="vzlist").stdout.split()
    assert listed == ["101", "yes", "102", "yes", "103", "no"]
    assert not stale(vzctl, 101) and not stale(vzctl, 102)

    # the daemon stays while a CT uses it, and goes with the last one
    vzctl("stop", 101)
    assert len(lxcfs_processes(place)) == 1 and uptime(vzctl, 102) >= 0
    vzctl("stop", 102)
    assert lxcfs_processes(place) == [] and not place.directory.exists()
    assert not [g for d in vz_env.cgroup_dirs() if d.exists() for g in d.glob("daemon-lxcfs*")]
    state = json.loads(vz_env.state(103).read_text())
    assert "lxcfs" not in state.get("plugins", {})
    vzctl("stop", 103)
    for ctid in (101, 102, 103):
        vzctl("destroy", ctid)
    assert lxcfs_processes(place) == [] and not mounts.mounts_below(vz_env.root)


STOP_LOG = '''
import os
from vzcore import hookimpl
from vzcore.plugin import PluginInfo
from vzcore_lxcfs import daemon

_stop = daemon.stop_unless_used


def _logged(where, run_dir, leaving):
    stopped = _stop(where, run_dir, leaving)
    with open(os.environ["VZ_LXCFS_LOG"], "a") as log:
        log.write(f"{stopped}\\n")
    return stopped


daemon.stop_unless_used = _logged


@hookimpl
def vz_plugin_info():
    return PluginInfo(subsystem="lxcfslog", summary="logs the asks whether lxcfs still serves")
'''


def test_stop_all_asks_once_at_its_end_whether_lxcfs_still_serves_a_ct(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> None:
    # Each stop used to ask, reading every CT's state file under the daemon's lock: a
    # stop-all of N CTs read N² files one stop after the other (vz_batch_done now).
    log = tmp_path / "asks"
    vz_env.add_plugin_module("lxcfs_log", STOP_LOG)
    vz_env.extra_env["VZ_LXCFS_LOG"] = str(log)
    for ctid in (101, 102, 103):
        vzctl("create", ctid, "--ostemplate", "busybox")
        vzctl("set", ctid, "--onboot", "yes", "--save")
    vzctl("boot-all")
    place = where(vz_env)
    assert len(lxcfs_processes(place)) == 1
    vzctl("stop-all", "--fast")
    assert log.read_text().split() == ["True"], "one ask per stop before"
    assert lxcfs_processes(place) == [] and not place.directory.exists()


def meminfo_host() -> dict[str, int]:
    text = Path("/proc/meminfo").read_text()
    return {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines() if line.strip()}


def test_lxcfs_yes_is_refused_without_lxcfs_and_changes_nothing(vz_env: VzEnv, vzctl: Vzctl,
                                                                busybox_ct: int) -> None:
    vz_env.write_vz_conf(LXCFS_BINARY="/nonexistent/lxcfs")
    conf = vz_env.conf(busybox_ct).read_text()
    refused = vzctl("set", busybox_ct, "--lxcfs", "yes", "--save", check=False)
    assert refused.returncode == 21
    assert f"CT {busybox_ct}: --lxcfs yes: lxcfs is not installed" in refused.stderr
    assert vz_env.conf(busybox_ct).read_text() == conf
    # unset (the default), the CT starts without views where lxcfs is missing
    vzctl("start", busybox_ct)
    assert meminfo(vzctl, busybox_ct)["MemTotal"] == meminfo_host()["MemTotal"]
    assert not where(vz_env).mountpoint.exists()
    vzctl("stop", busybox_ct)
    # saved by hand as yes: the start is refused, naming the fix
    with vz_env.conf(busybox_ct).open("a") as f:
        f.write('LXCFS="yes"\n')
    refused = vzctl("start", busybox_ct, check=False)
    assert refused.returncode == 21 and "--lxcfs no" in refused.stderr
    assert not vz_env.state(busybox_ct).exists()
