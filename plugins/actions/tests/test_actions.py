"""Action scripts on real CTs: each at OpenVZ's moment, in its context and environment;
a failing one stops the verb with exit 79 and leaves nothing; unsafe ones are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing.crash import leftovers
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

#: Every host-side script appends "MOMENT NAME VEID" to the log the test reads.
LOGGER = '#!/bin/sh\necho "{moment} {name} $VEID" >> {log}\n'


def script(vz_env: VzEnv, name: str, body: str, mode: int = 0o755) -> Path:
    path = vz_env.root / "etc/vz/conf" / name
    path.write_text(body)
    path.chmod(mode)
    return path


def create(vzctl: Vzctl, vz_env: VzEnv, ctid: int, profile: str) -> None:
    options: list[object] = ["--ostemplate", "busybox"]
    if profile == "privileged":
        vz_env.allow_privileged()
        options += ["--local_uid", "0", "--local_gid", "0"]
    vzctl("create", ctid, *options)


@pytest.fixture
def share(tmp_path: Path) -> Path:
    """A host directory the mount script binds into the CT."""
    directory = tmp_path / "share"
    directory.mkdir()
    (directory / "from-host").write_text("hello from the host\n")
    return directory


@pytest.mark.parametrize("profile", ["userns", "privileged"])
def test_mount_script_binds_a_host_directory_into_the_ct_and_start_runs_inside(
        vz_env: VzEnv, vzctl: Vzctl, share: Path, tmp_path: Path, profile: str) -> None:
    create(vzctl, vz_env, 101, profile)
    env_file = tmp_path / "env"
    script(vz_env, "101.mount",
           "#!/bin/sh\nset -e\n"
           f"env | grep -E '^(VEID|VE_[A-Z]+)=' > {env_file}\n"
           f'mkdir -p "$VE_ROOT/mnt/share"\nmount --bind {share} "$VE_ROOT/mnt/share"\n')
    script(vz_env, "101.umount", '#!/bin/sh\numount "$VE_ROOT/mnt/share"\n')
    # fed to the CT's shell, so it needs no #! line nor the x bit (as OpenVZ's)
    script(vz_env, "101.start",
           'echo "$VEID $$ $(id -u) $(readlink /proc/self/ns/pid)" > /root/started\n'
           "sleep 1000 &\n", 0o644)

    vzctl("start", 101)
    try:
        env = dict(line.split("=", 1) for line in env_file.read_text().split())
        assert env == {"VEID": "101", "VE_CONFFILE": str(vz_env.conf(101)),
                       "VE_ROOT": str(vz_env.ct_root(101)), "VE_PRIVATE": str(vz_env.private(101))}
        assert vzctl("exec", 101, "cat /mnt/share/from-host").stdout == "hello from the host\n"
        veid, pid, uid, pidns = vzctl("exec", 101, "cat /root/started").stdout.split()
        # CT root (uid 0 as the CT sees it), in the CT's own PID namespace, not the host's
        assert (veid, uid) == ("101", "0")
        assert pidns != os.readlink("/proc/self/ns/pid")
        assert int(pid) < 100
        assert "sleep 1000" in vzctl("exec", 101, "ps").stdout  # what it starts keeps running
    finally:
        vzctl("stop", 101)
    assert not mounts.is_mount_point(vz_env.ct_root(101) / "mnt/share")
    assert leftovers(vz_env, 101) == []


def test_scripts_run_in_openvz_order_global_first_for_every_ct(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> None:
    create(vzctl, vz_env, 101, "userns")
    create(vzctl, vz_env, 102, "userns")
    log = tmp_path / "log"
    for name in ("vps.premount", "vps.mount", "vps.umount", "vps.postumount",
                 "101.premount", "101.mount", "101.umount", "101.postumount"):
        script(vz_env, name, LOGGER.format(moment=name.split(".")[1], name=name, log=log))
    script(vz_env, "101.stop", "echo stopping > /root/stopped\n")

    vzctl("start", 101)
    vzctl("stop", 101)
    vzctl("mount", 102)   # the mount verbs run them too, without a start
    vzctl("umount", 102)

    assert log.read_text().splitlines() == [
        "premount vps.premount 101", "premount 101.premount 101",
        "mount vps.mount 101", "mount 101.mount 101",
        "umount vps.umount 101", "umount 101.umount 101",
        "postumount vps.postumount 101", "postumount 101.postumount 101",
        "premount vps.premount 102", "mount vps.mount 102",
        "umount vps.umount 102", "postumount vps.postumount 102"]
    # CTID.stop ran inside, before the CT went down: its file is in the CT's own tree
    assert (vz_env.private(101) / "root/stopped").read_text() == "stopping\n"
    assert leftovers(vz_env, 101) == [] and leftovers(vz_env, 102) == []


@pytest.mark.parametrize("failing", ["101.premount", "vps.mount", "101.start"])
def test_a_failing_script_stops_the_start_with_79_and_leaves_nothing(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path, failing: str) -> None:
    create(vzctl, vz_env, 101, "userns")
    log = tmp_path / "log"
    script(vz_env, "101.umount", LOGGER.format(moment="umount", name="101.umount", log=log))
    script(vz_env, failing, "#!/bin/sh\necho failing on purpose >&2\nexit 3\n")

    result = vzctl("start", 101, check=False)

    assert result.returncode == 79, result.stdout + result.stderr
    assert f"action script {vz_env.root / 'etc/vz/conf' / failing}" in result.stderr
    assert "exited with 3" in result.stderr
    assert not mounts.is_mount_point(vz_env.ct_root(101))
    assert leftovers(vz_env, 101) == []
    # the umount scripts undo a completed mount only (OpenVZ's rule)
    ran_umount = log.exists() and "101.umount" in log.read_text()
    assert ran_umount == (failing == "101.start")
    assert "down" in vzctl("status", 101).stdout


@pytest.mark.parametrize("unsafe", ["writable", "foreign"])
def test_a_script_another_user_could_write_is_refused_not_run(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path, unsafe: str) -> None:
    create(vzctl, vz_env, 101, "userns")
    ran = tmp_path / "ran"
    path = script(vz_env, "101.premount", f"#!/bin/sh\ntouch {ran}\n")
    if unsafe == "writable":
        path.chmod(0o777)
        reason = "is writable by group or others"
    else:
        os.chown(path, 65534, 65534)
        reason = "is owned by uid 65534, not root"

    result = vzctl("start", 101, check=False)

    assert result.returncode == 79
    assert f"refusing action script {path}: it {reason}" in result.stderr
    assert not ran.exists()
    assert leftovers(vz_env, 101) == []


def test_a_failing_stop_script_refuses_the_stop_with_79_and_the_ct_keeps_running(
        vz_env: VzEnv, vzctl: Vzctl) -> None:
    create(vzctl, vz_env, 101, "userns")
    script(vz_env, "101.stop", "echo ran >> /root/stop-ran\nexit 4\n", 0o644)
    vzctl("start", 101)
    init = vzctl("exec", 101, "cat /proc/1/stat").stdout.split()[21]  # its start time

    result = vzctl("stop", 101, check=False)

    # OpenVZ's vzctl: the verb fails with 79 before the CT is asked to shut down
    assert result.returncode == 79, result.stdout + result.stderr
    assert f"action script {vz_env.root / 'etc/vz/conf/101.stop'} inside the CT exited with 4" \
        in result.stderr
    assert "keeps running" in result.stderr and "vzctl stop --fast 101" in result.stderr
    assert "running" in vzctl("status", 101).stdout
    assert vzctl("exec", 101, "cat /proc/1/stat").stdout.split()[21] == init  # same init
    # --fast does not run the script (as OpenVZ): the way out the message names
    vzctl("stop", "--fast", 101)
    assert (vz_env.private(101) / "root/stop-ran").read_text() == "ran\n"
    assert leftovers(vz_env, 101) == []


def test_a_script_leading_into_a_cts_tree_is_refused(vz_env: VzEnv, vzctl: Vzctl,
                                                      tmp_path: Path) -> None:
    create(vzctl, vz_env, 101, "userns")
    create(vzctl, vz_env, 102, "userns")
    ran = tmp_path / "ran"
    # root-owned and 0755 (as in a privileged CT, whose root is the host's): only its place
    # in another CT's tree makes it unsafe
    planted = vz_env.private(102) / "bin/planted"
    planted.write_text(f"#!/bin/sh\ntouch {ran}\n")
    os.chown(planted, 0, 0)
    planted.chmod(0o755)
    link = vz_env.root / "etc/vz/conf/101.premount"
    link.symlink_to(planted)

    result = vzctl("start", 101, check=False)

    assert result.returncode == 79
    assert f"refusing action script {link}: it leads into {vz_env.root / 'vz/private'}" \
        in result.stderr
    assert not ran.exists()
    assert leftovers(vz_env, 101) == []
