"""Attacks on a running CT, from inside it and around it, for both profiles.

Each test is named after the attack class (or CVE) it covers; docs/security.md lists them
with what each profile protects against.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.security.conftest import RunningCt
from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def test_host_processes_are_out_of_reach(shared_ct: RunningCt) -> None:
    # First in the module: every exec into the shared CT takes PIDs of its namespace.
    assert shared_ct.sh("cat /proc/1/comm").stdout.strip() == "init"
    pids = {int(p) for p in shared_ct.sh("ls /proc | grep '^[0-9]'").stdout.split()}
    assert max(pids) < 100, f"the CT sees host PIDs: {sorted(pids)}"
    assert shared_ct.probe("kill", os.getpid()) == "ESRCH"


def test_loading_a_kernel_module_is_refused(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("init_module") == "EPERM"
    assert shared_ct.probe("finit_module") == "EPERM"


def test_kexec_is_refused(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("kexec_load") == "EPERM"


def test_setting_the_clock_is_refused(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("settime") == "EPERM"


def test_rebooting_the_host_is_refused(shared_ct: RunningCt) -> None:
    """reboot(2) never reaches the host.  In a user namespace the CT's root holds
    CAP_SYS_BOOT over its own PID namespace only, where the kernel takes nothing but
    restart, halt and power-off of the CT itself and refuses the rest (here: turning
    Ctrl-Alt-Del off) with EINVAL; a privileged CT has no CAP_SYS_BOOT at all."""
    expected = "EINVAL" if shared_ct.profile == "userns" else "EPERM"
    assert shared_ct.probe("reboot") == expected
    assert Path("/proc/uptime").exists()


def test_reading_the_host_kernel_log_is_refused(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("syslog") == "EPERM"
    assert shared_ct.sh("cat /proc/kmsg").stdout == ""  # masked with /dev/null


def test_host_keys_are_out_of_reach(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("keyctl") == "ENOSYS"
    assert shared_ct.sh("cat /proc/keys").stdout == ""


def test_bpf_perf_and_shocker_calls_are_refused(shared_ct: RunningCt) -> None:
    """bpf(2), perf_event_open(2) and open_by_handle_at(2) (the 'shocker' escape)."""
    assert shared_ct.probe("bpf") == "EPERM"
    assert shared_ct.probe("perf_event_open") == "EPERM"
    assert shared_ct.probe("open_by_handle_at") == "EPERM"


def test_opening_a_host_block_device_is_refused(shared_ct: RunningCt,
                                                 host_block_device: tuple[int, int]) -> None:
    """A user namespace cannot mknod devices; in the privileged profile seccomp refuses
    block devices.  (A node that gets in another way does not open either: the devices
    plugin's tests, plugins/devices/tests/test_devices_ct.py.)"""
    verdict = shared_ct.probe("mknod-block", "/hostdisk", *host_block_device)
    assert verdict in ("EPERM", "EACCES"), verdict


def test_writing_proc_sys_kernel_is_refused(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("write", "/proc/sys/kernel/panic") in ("EROFS", "EACCES", "EPERM")


@pytest.mark.needs("sysrq")
def test_writing_sysrq_trigger_is_refused(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("write", "/proc/sysrq-trigger") in ("EROFS", "EACCES", "EPERM")


def test_remounting_proc_sys_or_sys_read_write_is_refused(shared_ct: RunningCt) -> None:
    """Locked mounts in a user namespace; seccomp refuses mount(2) in the privileged profile."""
    assert shared_ct.probe("remount-rw", "/proc/sys") != "ok"
    assert shared_ct.probe("remount-rw", "/sys") != "ok"


def test_unmasking_a_masked_path_is_refused_cve_2019_16884(shared_ct: RunningCt) -> None:
    """Locked mounts in a user namespace; seccomp refuses umount2(2) in the privileged profile."""
    for path in ("/proc/keys", "/proc/timer_list", "/sys/firmware"):
        if shared_ct.sh(f"test -e {path}").returncode == 0:
            assert shared_ct.probe("umount", path) != "ok", path


def test_host_cgroupfs_is_not_writable(shared_ct: RunningCt) -> None:
    """The host's /sys/fs/cgroup is not there; a new cgroup v1 hierarchy (the way to a
    release_agent escape, CVE-2022-0492) cannot be mounted: the kernel refuses new
    hierarchies inside a cgroup namespace, which protects privileged CTs too."""
    assert shared_ct.sh("ls /sys/fs/cgroup").stdout.strip() == ""
    shared_ct.sh("mkdir -p /tmp/cg")
    verdict = shared_ct.probe("mount", "cgroup", "/tmp/cg", "cgroup", "none,name=vzescape")
    if verdict == "ok":
        shared_ct.sh("echo /bin/sh > /tmp/cg/release_agent; umount /tmp/cg")
    assert verdict in ("EPERM", "EACCES"), verdict


def test_no_host_descriptor_leaks_into_the_ct_cve_2024_21626(shared_ct: RunningCt) -> None:
    fds = dict(line.split(None, 1) for line in shared_ct.probe("fds").splitlines())
    assert set(fds) <= {"0", "1", "2", "3"}, fds  # 3 is the probe's own directory handle
    assert all(target.startswith(("pipe:", "/proc/")) for target in fds.values()), fds
    init_fds = shared_ct.sh("ls -l /proc/1/fd").stdout  # stdio on the CT's console pty (console.md)
    assert init_fds.count(" -> ") == 3 and init_fds.count("/dev/console") == 3, init_fds
    assert shared_ct.sh("readlink /proc/self/cwd").stdout.strip() == "/"


def test_the_joining_process_cannot_be_inspected_cve_2016_9962(shared_ct: RunningCt,
                                                              tmp_path: Path) -> None:
    """While `vzctl exec` is inside the CT but has not exec'd yet, a CT process can read
    neither its memory nor its host binary (runc CVE-2016-9962 and CVE-2019-5736, the
    /proc/self/exe overwrite); its environment: test_proc_exe.py."""
    trace = tmp_path / "trace"
    os.mkfifo(trace)  # vzctl writes each checkpoint there as it passes it: no sleep
    env = {**shared_ct.env.env, "VZ_FAULT_PAUSE_AT": "enter:joined:3",
           "VZ_FAULT_TRACE": str(trace)}
    paused = subprocess.Popen([vzctl_binary(), "exec", str(shared_ct.ctid), "true"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(trace) as points:
            if "enter:joined" not in (point.strip() for point in points):
                pytest.fail("vzctl exec ended before it joined the CT")
            listing = shared_ct.sh("ps -o pid,comm").stdout.split("\n")[1:]
            joiners = [line.split()[0] for line in listing if "vzctl" in line or "python" in line]
            assert joiners, f"the paused joining process is not visible: {listing}"
            for pid in joiners:
                for name in ("exe", "mem"):
                    verdict = shared_ct.probe("read", f"/proc/{pid}/{name}")
                    assert verdict in ("EACCES", "EPERM", "ENOENT"), (name, verdict)
            points.read()  # vzctl's later checkpoints, to its end: it must not lose its reader
    finally:
        paused.wait(timeout=30)


def test_a_planted_proc_symlink_cannot_redirect_mounts_cve_2021_30465(vz_env: VzEnv,
                                                                       vzctl: Vzctl) -> None:
    """A CT that makes its /proc and /dev links to host paths before its next start:
    the mounts land inside the CT root (or the start fails), never on the host."""
    vzctl("create", 102, "--ostemplate", "busybox")
    private = vz_env.private(102)
    victim = vz_env.root.parent / "victim"
    victim.mkdir()
    (victim / "file").write_text("untouched")
    (private / "proc").rmdir()
    (private / "proc").symlink_to(victim)
    (private / "dev").rmdir()
    (private / "dev").symlink_to("../../../../../../../../..")
    result = vzctl("start", 102, check=False)
    try:
        escaped = [e.mount_point for e in mounts.mountinfo()
                   if e.mount_point.startswith(str(victim)) or (e.fstype in ("proc", "devpts")
                   and not e.mount_point.startswith(("/proc", "/dev", str(vz_env.root))))]
        assert not escaped, f"mounts escaped to the host: {escaped}"
    finally:
        if result.returncode == 0:
            vzctl("stop", "--fast", 102)
    assert sorted(p.name for p in victim.iterdir()) == ["file"]
    assert (victim / "file").read_text() == "untouched"


def test_dev_null_swapped_for_a_link_does_not_unmask(ct: RunningCt, vzctl: Vzctl,
                                                     vz_env: VzEnv) -> None:
    """The 2025 runc /dev mask races: the masks come from the host's /dev/null, so a CT
    that replaces its own /dev/null with a link changes nothing at its next start."""
    dev = vz_env.private(101) / "dev"
    (dev / "null").unlink(missing_ok=True)
    (dev / "null").symlink_to("/proc/sysrq-trigger")
    vzctl("restart", "--fast", 101)
    assert ct.sh("cat /proc/keys").stdout == ""
    assert ct.probe("write", "/proc/sysrq-trigger") != "ok"


def test_vzctl_destroy_never_follows_links_or_enters_mounts(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", 103, "--ostemplate", "busybox")
    outside = vz_env.root.parent / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host data")
    (vz_env.private(103) / "escape").symlink_to(outside)
    (vz_env.private(103) / "root/escape-dir").symlink_to(str(outside) + "/")
    vzctl("destroy", 103)
    assert (outside / "keep").read_text() == "host data"
    vzctl("create", 104, "--ostemplate", "busybox")
    mount_point = vz_env.private(104) / "mnt"
    subprocess.run(["mount", "--bind", str(outside), str(mount_point)], check=True)
    try:
        refused = vzctl("destroy", 104, check=False)
        assert refused.returncode != 0 and "another file system" in refused.stderr
        assert (outside / "keep").read_text() == "host data"
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    vzctl("destroy", 104)


def test_ct_root_is_not_host_root(shared_ct: RunningCt) -> None:
    init = json.loads(shared_ct.env.state(shared_ct.ctid).read_text())["init"]["pid"]
    uid = int(Path(f"/proc/{init}/status").read_text().split("Uid:")[1].split()[0])
    if shared_ct.profile == "userns":
        assert uid >= 100000
        assert shared_ct.sh("id -u").stdout.strip() == "0"
    else:
        assert uid == 0
