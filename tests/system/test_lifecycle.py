"""A real busybox CT on the real kernel: create, start, look inside, stop, destroy."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def host_pids_of(vz_env: VzEnv) -> set[int]:
    pids: set[int] = set()
    for directory in vz_env.cgroup_dirs():
        for procs in directory.rglob("cgroup.procs") if directory.exists() else []:
            pids.update(int(p) for p in procs.read_text().split())
    return pids


@pytest.fixture(scope="module")
def running_ct(vz_env_module: VzEnv, vzctl_module: Vzctl) -> Iterator[int]:
    """CT 101 from the busybox template, started once for the tests that only look at it
    or run commands that leave it as it was (the others start a CT of their own)."""
    vzctl_module("create", 101, "--ostemplate", "busybox", "--hostname", "ct101")
    vzctl_module("start", 101)
    yield 101
    vzctl_module("stop", "--fast", 101)
    vzctl_module("destroy", 101)


def test_a_started_ct_runs_its_template(vz_env_module: VzEnv, vzctl_module: Vzctl,
                                        running_ct: int) -> None:
    """Isolation itself is the isolation contract's (plugins/isolation/tests/test_contract.py)."""
    vzctl, vz_env, busybox_ct = vzctl_module, vz_env_module, running_ct
    assert vzctl("status", busybox_ct).stdout.strip() == "CTID 101 exist mounted running"
    assert "busybox" in vzctl("exec", busybox_ct, "cat /etc/os-release").stdout
    assert (vz_env.ct_root(101) / "bin/busybox").exists()


def test_exec_variants_and_exit_codes(vzctl_module: Vzctl, running_ct: int) -> None:
    vzctl, busybox_ct = vzctl_module, running_ct
    assert vzctl("exec2", busybox_ct, "exit 7", check=False).returncode == 7
    failed = vzctl("exec", busybox_ct, "exit 3", check=False)
    assert failed.returncode == 8
    assert "CT 101" in failed.stderr
    assert vzctl("exec", busybox_ct, "echo", "a", "b").stdout == "a b\n"
    piped = vzctl("exec", busybox_ct, "echo one; echo two | tr o 0").stdout
    assert piped == "one\ntw0\n"
    assert vzctl("exec3", busybox_ct, "/bin/echo", "$HOME", "x y").stdout == "$HOME x y\n"
    assert vzctl("exec", busybox_ct, "cat", input="from stdin\n").stdout == "from stdin\n"
    assert vzctl("exec", busybox_ct, "-", input="echo script; hostname\n").stdout == "script\nct101\n"
    assert vzctl("exec3", busybox_ct, "/no/such/program", check=False).returncode == 127


def test_vzlist_shows_running_cts(vzctl: Vzctl, vzlist: Vzctl, busybox_ct: int) -> None:
    vzctl("create", 102, "--ostemplate", "busybox")
    vzctl("start", busybox_ct)
    rows = json.loads(vzlist("-j").stdout)
    assert [r["ctid"] for r in rows] == [101]
    assert rows[0]["status"] == "running"
    assert rows[0]["hostname"] == "ct101"
    assert rows[0]["numproc"]["held"] >= 1
    all_rows = json.loads(vzlist("-a", "-j").stdout)
    assert {r["ctid"]: r["status"] for r in all_rows} == {101: "running", 102: "stopped"}
    table = vzlist().stdout.splitlines()
    assert table[0].split() == ["CTID", "NPROC", "STATUS", "IP_ADDR", "HOSTNAME"]
    assert table[1].split() == ["101", table[1].split()[1], "running", "-", "ct101"]
    assert vzlist("-1", "-a").stdout.split() == ["101", "102"]
    assert vzlist("999", check=False).returncode == 1
    vzctl("destroy", 102)


def test_stop_leaves_no_process_mount_or_cgroup(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    pids = host_pids_of(vz_env)
    assert pids
    vzctl("stop", busybox_ct)  # a clean shutdown through the CT's halt
    assert vzctl("status", busybox_ct).stdout.strip() == "CTID 101 exist unmounted down"
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ")[1][0] == "Z"
    assert not mounts.mounts_below(vz_env.root)
    assert not [d for d in vz_env.ct_cgroup_dirs(101) if d.exists()]
    assert not vz_env.state(101).exists()


def test_destroy_removes_config_and_private_area(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    refused = vzctl("destroy", busybox_ct, check=False)
    assert refused.returncode == 32
    assert vz_env.private(101).exists()
    vzctl("stop", "--fast", busybox_ct)
    vzctl("destroy", busybox_ct)
    assert not vz_env.conf(101).exists()
    assert vz_env.conf(101).with_name("101.conf.destroyed").exists()
    assert not vz_env.private(101).exists()
    assert vzctl("status", busybox_ct).stdout.strip() == "CTID 101 deleted unmounted down"


def test_mount_and_umount(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("mount", busybox_ct)
    assert (vz_env.ct_root(101) / "bin/busybox").exists()
    assert vzctl("status", busybox_ct).stdout.strip() == "CTID 101 exist mounted down"
    assert vzctl("mount", busybox_ct, check=False).returncode == 41
    vzctl("start", busybox_ct)
    assert vzctl("umount", busybox_ct, check=False).returncode == 32
    vzctl("stop", "--fast", "--skip-umount", busybox_ct)
    assert vzctl("status", busybox_ct).stdout.strip() == "CTID 101 exist mounted down"
    vzctl("umount", busybox_ct)
    assert vzctl("umount", busybox_ct, check=False).returncode == 40


def test_live_hostname_change_and_save(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    vzctl("set", busybox_ct, "--hostname", "renamed")
    assert vzctl("exec", busybox_ct, "hostname").stdout.strip() == "renamed"
    assert 'HOSTNAME="ct101"' in vz_env.conf(101).read_text(), "without --save the config stays"
    vzctl("set", busybox_ct, "--hostname", "saved", "--save")
    assert 'HOSTNAME="saved"' in vz_env.conf(101).read_text()
    vzctl("restart", "--fast", busybox_ct)
    assert vzctl("exec", busybox_ct, "hostname").stdout.strip() == "saved"


def test_capabilities_are_reduced_and_configurable(vz_env: VzEnv, vzctl: Vzctl,
                                                   busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    caps = int(vzctl("exec", busybox_ct, "grep CapBnd /proc/self/status").stdout.split()[1], 16)
    for dropped in (16, 17, 25):  # sys_module, sys_rawio, sys_time
        assert not caps & (1 << dropped)
    assert caps & (1 << 22), "sys_boot: reboot(2) of the CT's own PID namespace"
    clock = vzctl("exec", busybox_ct, "date -s 2001-01-01")
    assert "Operation not permitted" in clock.stderr
    vzctl("set", busybox_ct, "--capability", "sys_time:on", "--capability", "chown:off", "--save")
    assert 'CAPABILITY="CHOWN:off SYS_TIME:on"' in vz_env.conf(101).read_text()
    vzctl("restart", "--fast", busybox_ct)
    caps = int(vzctl("exec", busybox_ct, "grep CapBnd /proc/self/status").stdout.split()[1], 16)
    assert caps & (1 << 25) and not caps & (1 << 0)
    refused = vzctl("set", busybox_ct, "--capability", "sys_nonsense:on", check=False)
    assert refused.returncode == 21 and "unknown capability" in refused.stderr


def test_kernel_paths_are_masked_or_read_only(vzctl_module: Vzctl, running_ct: int) -> None:
    vzctl, busybox_ct = vzctl_module, running_ct
    assert vzctl("exec", busybox_ct, "cat /proc/keys").stdout == ""
    assert vzctl("exec", busybox_ct, "echo 1 > /proc/sys/kernel/domainname", check=False).returncode == 8
    assert vzctl("exec", busybox_ct, "echo h > /proc/sysrq-trigger", check=False).returncode == 8
    assert vzctl("exec", busybox_ct, "touch /sys/x", check=False).returncode == 8
    assert vzctl("exec", busybox_ct, "ls /sys/firmware").stdout == ""
    # the CT's own network namespace keeps its /proc/sys/net writable
    vzctl("exec", busybox_ct, "echo 1 > /proc/sys/net/ipv4/ip_forward")


@pytest.mark.vm
def test_enter_gives_a_root_shell_on_a_pty_of_the_ct(vz_env: VzEnv, busybox_ct: int,
                                                     vzctl: Vzctl) -> None:
    import pty
    import select
    import time

    from vzcore.testing.pytest_plugin import vzctl_binary

    vzctl("start", busybox_ct)
    master, slave = pty.openpty()
    proc = subprocess.Popen([vzctl_binary(), "enter", "101"], stdin=slave, stdout=slave,
                            stderr=slave, env=vz_env.env, start_new_session=True)
    os.close(slave)
    output = b""

    def read_until(marker: bytes) -> None:
        nonlocal output
        deadline = time.monotonic() + 30
        while marker not in output and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    output += os.read(master, 4096)
                except OSError:  # the pty hung up: vzctl has exited
                    return

    read_until(b"# ")  # like a user, type at the prompt
    os.write(master, b"echo tty=$(tty) pid1=$(cat /proc/1/comm) uid=$(id -u); exit 3\n")
    read_until(b"exited from CT 101")
    proc.wait(timeout=10)
    os.close(master)
    text = output.decode(errors="replace")
    assert "tty=/dev/pts/0 pid1=init uid=0" in text, text
    assert proc.returncode == 3


def test_each_ct_gets_an_id_range_of_its_own(vz_env: VzEnv, vzctl: Vzctl) -> None:
    ranges = {}
    for ctid in (101, 102):
        vzctl("create", ctid, "--ostemplate", "busybox")
        conf = vz_env.conf(ctid).read_text()
        ranges[ctid] = int(conf.split('LOCAL_UID="')[1].split('"')[0])
        owner = vz_env.private(ctid).joinpath("bin/busybox").stat()
        assert (owner.st_uid, owner.st_gid) == (ranges[ctid], ranges[ctid])
    assert ranges[101] >= 100000 and abs(ranges[101] - ranges[102]) >= 65536
    vz_env.allow_privileged()
    vzctl("create", 103, "--ostemplate", "busybox", "--local_uid", "0", "--local_gid", "0")
    assert vz_env.private(103).joinpath("bin/busybox").stat().st_uid == 0
    refused = vzctl("set", 101, "--local_uid", "5000000", check=False)
    assert refused.returncode == 21 and "only be given to create" in refused.stderr
    vzctl("start", 101)
    init = json.loads(vz_env.state(101).read_text())["init"]["pid"]
    assert f"Uid:\t{ranges[101]}" in Path(f"/proc/{init}/status").read_text()
    assert vzctl("exec", 101, "id -u").stdout.strip() == "0"
