"""The privileged profile (``LOCAL_UID=0``, no user namespace): an explicit opt-in of
vz.conf (``ALLOW_PRIVILEGED``), and the escapes its root had (issue 19, item 9), each
refused by seccomp in both profiles.  Remounting /sys read-write, unmasking a masked path
and opening a host block device are in test_attacks.py; what the privileged profile still
allows is listed, with the reason, in docs/security.md.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import RunningCt
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_seccomp import policy

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

PRIVILEGED = ("--local_uid", "0", "--local_gid", "0")
REFUSED = ("EPERM", "EACCES")


def _one_line_refusal(result: subprocess.CompletedProcess[str], vz_env: VzEnv) -> None:
    assert result.returncode == 21, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert 'ALLOW_PRIVILEGED="yes"' in message and str(vz_env.root / "etc/vz/vz.conf") in message


def test_creating_a_privileged_ct_is_refused_without_the_switch(vz_env: VzEnv,
                                                                vzctl: Vzctl) -> None:
    for switch in (None, "no"):
        if switch is not None:
            vz_env.write_vz_conf(ALLOW_PRIVILEGED=switch)
        refused = vzctl("create", 101, "--ostemplate", "busybox", *PRIVILEGED, check=False)
        _one_line_refusal(refused, vz_env)
        assert "CT 101" in refused.stderr and "--local_uid 0" in refused.stderr
    # vz.conf's LOCAL_UID="0" as every CT's default is the same profile.
    vz_env.write_vz_conf(LOCAL_UID="0", LOCAL_GID="0")
    _one_line_refusal(vzctl("create", 101, "--ostemplate", "busybox", check=False), vz_env)
    assert not vz_env.conf(101).exists()
    assert not vz_env.private(101).exists()
    assert not vz_env.ct_root(101).exists()
    assert vzctl("status", 101).stdout.split()[2] == "deleted"


def test_a_malformed_switch_is_refused_naming_it(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vz_env.write_vz_conf(ALLOW_PRIVILEGED="maybe")
    refused = vzctl("create", 101, "--ostemplate", "busybox", *PRIVILEGED, check=False)
    assert refused.returncode == 85 and "ALLOW_PRIVILEGED='maybe'" in refused.stderr
    assert not vz_env.conf(101).exists()


def test_a_privileged_ct_is_created_and_started_with_a_warning(vz_env: VzEnv,
                                                                vzctl: Vzctl) -> None:
    vz_env.allow_privileged()
    warning = "warning: CT 101 is privileged (LOCAL_UID=0)"
    assert warning in vzctl("create", 101, "--ostemplate", "busybox", *PRIVILEGED).stderr
    assert warning in vzctl("start", 101).stderr
    assert vzctl("exec", 101, "id -u").stdout.strip() == "0"
    vzctl("stop", "--fast", 101)
    vzctl("create", 102, "--ostemplate", "busybox")
    assert "warning" not in vzctl("start", 102).stderr  # the default profile: no warning
    vzctl("stop", "--fast", 102)


def test_starting_a_privileged_ct_is_refused_once_the_switch_is_off(vz_env: VzEnv,
                                                                    vzctl: Vzctl) -> None:
    vz_env.allow_privileged()
    vzctl("create", 101, "--ostemplate", "busybox", *PRIVILEGED)
    vzctl("create", 102, "--ostemplate", "busybox")
    vz_env.write_vz_conf(ALLOW_PRIVILEGED="no")
    refused = vzctl("start", 101, check=False)
    _one_line_refusal(refused, vz_env)
    assert "re-create it with a user namespace" in refused.stderr
    # A config whose LOCAL_UID was removed by hand is privileged too (no user namespace).
    conf = vz_env.conf(102)
    conf.write_text("".join(line for line in conf.read_text().splitlines(keepends=True)
                            if not line.startswith(("LOCAL_UID=", "LOCAL_GID="))))
    _one_line_refusal(vzctl("start", 102, check=False), vz_env)
    for ctid in (101, 102):
        assert not vz_env.state(ctid).exists()
        assert vzctl("status", ctid).stdout.split()[4] == "down"


def test_setting_local_uid_0_later_is_refused(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    before = vz_env.conf(101).read_text()
    for options in (["--local_uid", "0"], ["--local_uid", "0", "--local_gid", "0"]):
        refused = vzctl("set", 101, *options, "--save", check=False)
        assert refused.returncode == 21 and "can only be given to create" in refused.stderr
        assert vz_env.conf(101).read_text() == before


def _host_binfmt_handlers(tmp_path: Path) -> list[str]:
    """The handlers of the host's binfmt_misc instance (mounted for a look); a
    ``vzprobe`` handler found there is removed."""
    mount_point = tmp_path / "binfmt"
    mount_point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(mount_point)], check=True)
    try:
        names = sorted(p.name for p in mount_point.iterdir())
        if "vzprobe" in names:
            (mount_point / "vzprobe").write_text("-1")
        return names
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_registering_a_binfmt_misc_handler_on_the_host_is_refused(shared_ct: RunningCt,
                                                                  tmp_path: Path) -> None:
    shared_ct.sh("mkdir -p /tmp/binfmt")
    verdict = shared_ct.probe("binfmt", "/tmp/binfmt")
    assert "vzprobe" not in _host_binfmt_handlers(tmp_path)
    if shared_ct.profile == "privileged":  # its binfmt_misc would be the host's instance
        assert verdict == "EPERM"


@pytest.fixture
def host_core_pattern() -> Iterator[str]:
    """The host's core_pattern, put back after the test if a CT changed it."""
    path = Path("/proc/sys/kernel/core_pattern")
    before = path.read_text()
    yield before
    if path.read_text() != before:
        path.write_text(before)


def test_core_pattern_cannot_be_written_after_unmounting_proc_sys(shared_ct: RunningCt,
                                                                  host_core_pattern: str) -> None:
    for path in ("/proc/sys/net", "/proc/sys"):  # the writable net bind sits on it
        assert shared_ct.probe("umount", path) != "ok", path
    written = shared_ct.probe("write-text", "/proc/sys/kernel/core_pattern", "|/bin/true %p")
    assert written in ("EROFS", *REFUSED), written
    assert Path("/proc/sys/kernel/core_pattern").read_text() == host_core_pattern


def test_mounting_cgroupfs_to_raise_its_own_limits_is_refused(shared_ct: RunningCt) -> None:
    """In its cgroup namespace a mounted cgroupfs shows the CT's own group, whose limits
    the host's root may write: the mount (privileged) or the write (userns) is refused."""
    shared_ct.sh("mkdir -p /tmp/cg")
    v1 = Path("/sys/fs/cgroup/pids/cgroup.procs").exists()
    fstype, options = ("cgroup", ["pids"]) if v1 else ("cgroup2", [])
    mounted = shared_ct.probe("mount", "none", "/tmp/cg", fstype, *options)
    if shared_ct.profile == "privileged":
        assert mounted == "EPERM"
    if mounted == "ok":
        raised = shared_ct.probe("write-text", "/tmp/cg/pids.max", "max")
        shared_ct.sh("umount /tmp/cg")
        assert raised in REFUSED, raised
    else:
        assert mounted in REFUSED, mounted


def test_a_privileged_ct_cannot_mount_anything(shared_ct: RunningCt) -> None:
    """The documented price of refusing mount(2) without an LSM: even a harmless tmpfs
    (a CT with a user namespace keeps mounting what its namespace allows)."""
    shared_ct.sh("mkdir -p /tmp/t")
    verdict = shared_ct.probe("mount", "tmpfs", "/tmp/t", "tmpfs")
    assert verdict == ("EPERM" if shared_ct.profile == "privileged" else "ok")
    if verdict == "ok":
        assert shared_ct.probe("umount", "/tmp/t") == "ok"


def test_binding_proc_past_its_masks_is_refused(shared_ct: RunningCt) -> None:
    """A non-recursive bind of /proc leaves the masks and read-only binds behind."""
    shared_ct.sh("mkdir -p /tmp/p")
    verdict = shared_ct.probe("bind", "/proc", "/tmp/p")
    assert verdict != "ok", "/proc was bound without its masks"


@pytest.fixture
def ext4_in_ct(ct: RunningCt, vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> Iterator[RunningCt]:
    """The CT restarted with an ext4 file system of its own at /mnt (a loop device), so
    that a freeze that got through would stop that file system, never the host's."""
    image = tmp_path / "fs.img"
    with image.open("wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    vzctl("stop", "--fast", ct.ctid)
    vzctl("mount", ct.ctid)
    mount_point = vz_env.ct_root(ct.ctid) / "mnt"
    subprocess.run(["mount", "-o", "loop", str(image), str(mount_point)], check=True)
    try:
        vzctl("start", ct.ctid)
        yield ct
    finally:
        # The host's copy goes first, or stop cannot unmount the CT's root; the CT's
        # copy goes with its mount namespace.
        subprocess.run(["umount", str(mount_point)], check=True)
    vzctl("stop", "--fast", ct.ctid)


def test_freezing_a_file_system_is_refused(ext4_in_ct: RunningCt) -> None:
    """FIFREEZE on the file system a CT lives on stops every writer of the host's;
    relabelling or resizing it changes the host's."""
    ct = ext4_in_ct
    assert ct.sh("grep ' /mnt ' /proc/self/mountinfo").stdout, "the loop file system is there"
    assert ct.probe("freeze", "/mnt") == "EPERM"
    for name in ("FS_IOC_SETFSLABEL", "EXT4_IOC_RESIZE_FS", "FITRIM"):
        request = policy.WHOLE_FILE_SYSTEM_IOCTLS[name]
        assert ct.probe("ioctl", "/mnt", f"{request:x}") == "EPERM", name


def test_a_file_system_wide_fanotify_mark_is_refused(shared_ct: RunningCt) -> None:
    """A mark on the whole file system the CT lives on would report (and open) the host's
    files on it."""
    assert shared_ct.probe("fanotify-fs", "/") in REFUSED


def test_opening_a_file_by_handle_is_refused_shocker(shared_ct: RunningCt) -> None:
    assert shared_ct.probe("shocker", "/") == "EPERM"


def test_creating_host_character_devices_is_refused(shared_ct: RunningCt) -> None:
    """/dev/loop-control (10:237) would hand out the host's loop devices; the devices
    every CT has may still be made (a privileged CT's tools do that)."""
    assert shared_ct.probe("mknod-char", "/tmp/loop-control", 10, 237) == "EPERM"
    if shared_ct.profile == "privileged":
        # In /dev: the root's own mount is nodev, where even allowed nodes do not open.
        assert shared_ct.probe("mknod-char", "/dev/probe-null", 1, 3) == "ok"


def test_a_device_node_already_in_the_private_area_is_not_usable(
        shared_ct: RunningCt, host_block_device: tuple[int, int]) -> None:
    """A node the CT cannot make may still come with a template tarball (whose device
    members are kept) or from a host tool writing into the private area."""
    node = shared_ct.env.private(shared_ct.ctid) / "root/disk"
    node.parent.mkdir(exist_ok=True)
    os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(*host_block_device))
    owner = shared_ct.env.private(shared_ct.ctid).stat()
    os.chown(node, owner.st_uid, owner.st_gid)
    try:
        assert shared_ct.probe("read", "/root/disk") in REFUSED
    finally:  # the CT is shared, and the loop device goes after the test
        node.unlink()


def test_init_and_joined_processes_carry_the_filter(shared_ct: RunningCt) -> None:
    """The mitigations are seccomp's: every process of the CT carries the filter."""
    init = json.loads(shared_ct.env.state(shared_ct.ctid).read_text())["init"]["pid"]
    status = Path(f"/proc/{init}/status").read_text()
    assert "Seccomp:\t2" in status
    assert "Seccomp:\t2" in shared_ct.sh("cat /proc/self/status").stdout
