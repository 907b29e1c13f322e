"""The devices plugin on running CTs of both profiles: the default allow list, grants and
revokes by node and by number, live and saved, and refusals of bad input (issue 16)."""

from __future__ import annotations

import stat

import pytest
from devices_helpers import SECRET, LoopDevice, RunningCt

from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_devices.policy import DEFAULT

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

REFUSED = ("EPERM", "EACCES")


def _devices_list(ct: RunningCt) -> str | None:
    d = next((d for d in ct.env.cgroups(ct.ctid).dirs if "devices" in d.controllers), None)
    return None if d is None else d.file("devices.list").read_text()


def test_default_list_then_a_live_saved_grant_and_revoke(ct: RunningCt, vzlist: Vzctl,
                                                         loop_device: LoopDevice) -> None:
    # The check, as a new user would type it.
    made = ct.sh("mknod /dev/x b 7 0; dd if=/dev/x count=1")
    assert made.returncode != 0
    assert "not permitted" in made.stderr or "denied" in made.stderr, made.stderr
    assert ct.sh("echo hello > /dev/null && head -c 8 /dev/urandom | wc -c").stdout.strip() == "8"
    # The device wall itself: a node for the host's disk that the CT did not have to make.
    ct.plant_node("hostdisk", stat.S_IFBLK, loop_device.numbers)
    assert ct.probe("open", "/dev/hostdisk", "r") in REFUSED
    assert ct.probe("open", "/dev/null", "rw") == "ok"

    name = loop_device.name
    ct.vzctl("set", ct.ctid, "--devnodes", f"{name}:rw", "--devnodes", "net/tun:rw", "--save")
    listing = ct.sh(f"ls -l /dev/{name}").stdout
    assert listing.startswith("b") and "root" in listing, listing
    assert ct.sh(f"head -c {len(SECRET)} /dev/{name}").stdout == SECRET.decode()
    written = ct.sh(f"echo -n inside | dd of=/dev/{name} bs=512 seek=1 2>/dev/null; "
                    f"dd if=/dev/{name} bs=512 skip=1 count=1 2>/dev/null | head -c 6")
    assert written.stdout == "inside", written.stderr
    assert ct.probe("open", "/dev/hostdisk", "rw") == "ok"  # the grant is by number
    assert ct.probe("tun") == "ok"  # a tun device, made inside (the VPN case)
    shown = vzlist("-H", "-o", "devnodes", ct.ctid).stdout
    assert f"{name}:rw" in shown and "net/tun:rw" in shown, shown

    ct.vzctl("set", ct.ctid, "--devnodes", f"{name}:none", "--save")
    assert ct.sh(f"test -e /dev/{name}").returncode != 0
    assert ct.probe("open", "/dev/hostdisk", "r") in REFUSED  # revoked at once
    assert f"{name}:" not in ct.config().decode()

    ct.vzctl("set", ct.ctid, "--devnodes", f"{name}:r", "--save")
    ct.vzctl("restart", ct.ctid)
    assert ct.sh(f"head -c {len(SECRET)} /dev/{name}").stdout == SECRET.decode()
    assert ct.probe("open", f"/dev/{name}", "w") in REFUSED  # r only
    assert ct.probe("tun") == "ok"
    ct.vzctl("set", ct.ctid, "--devnodes", f"{name}:none", "--devnodes", "net/tun:none", "--save")
    ct.vzctl("restart", ct.ctid)
    assert ct.sh(f"test -e /dev/{name} || test -e /dev/net/tun").returncode != 0
    ct.plant_node("hostdisk", stat.S_IFBLK, loop_device.numbers)
    assert ct.probe("open", "/dev/hostdisk", "r") in REFUSED


def test_devices_by_number_make_no_node(ct: RunningCt, vzlist: Vzctl,
                                        loop_device: LoopDevice) -> None:
    major, minor = loop_device.numbers
    ct.plant_node("disk", stat.S_IFBLK, loop_device.numbers)
    before = ct.sh("ls /dev").stdout
    ct.vzctl("set", ct.ctid, "--devices", f"b:{major}:all:r", "--save")
    assert ct.sh("ls /dev").stdout == before
    assert ct.probe("open", "/dev/disk", "r") == "ok"
    assert ct.probe("open", "/dev/disk", "w") in REFUSED
    assert f"b:{major}:all:r" in vzlist("-H", "-o", "devices", ct.ctid).stdout
    ct.vzctl("set", ct.ctid, "--devices", f"b:{major}:all:none", "--devices",
             f"b:{major}:{minor}:w", "--save")
    assert ct.probe("open", "/dev/disk", "r") in REFUSED
    assert ct.probe("open", "/dev/disk", "w") == "ok"


BAD = [
    (("--devnodes", "loop3"), "--devnodes"),
    (("--devnodes", "../sda:rw"), "--devnodes"),
    (("--devnodes", "nosuchnode9:rw"), "--devnodes"),
    (("--devices", "c:1:x:rw"), "--devices"),
    (("--devices", "b:7:3"), "--devices"),
    (("--devices", "q:7:3:rw"), "--devices"),
    (("--netdev_add", "nosuchif0"), "--netdev_add"),
    (("--netdev_del", "nosuchif0"), "--netdev_del"),
]


def test_bad_specs_are_refused_naming_the_ct_and_the_parameter_and_change_nothing(
        ct: RunningCt) -> None:
    config = ct.config()
    devices = _devices_list(ct)
    dev = ct.sh("ls -R /dev").stdout
    for args, option in BAD:
        for extra in ((), ("--save",)):
            refused = ct.vzctl("set", ct.ctid, *args, *extra, check=False)
            assert refused.returncode in (20, 21), (args, refused.stderr)
            message = refused.stderr.strip()
            assert len(message.splitlines()) == 1, message
            assert f"CT {ct.ctid}" in message and option in message, message
    assert ct.config() == config
    assert _devices_list(ct) == devices
    assert ct.sh("ls -R /dev").stdout == dev


def test_a_ct_gets_exactly_the_default_list_on_v1(ct: RunningCt) -> None:
    listing = _devices_list(ct)
    if listing is None:
        pytest.skip("no cgroup v1 devices hierarchy on this host (cgroup v2: the BPF program)")
    assert sorted(listing.split("\n")[:-1]) == sorted(rule.text() for rule in DEFAULT)


def test_a_started_ct_refuses_a_node_the_host_lost(vz_env: VzEnv, vzctl: Vzctl,
                                                   loop_device: LoopDevice) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    vzctl("set", 101, "--devnodes", f"{loop_device.name}:rw", "--save")
    config = vz_env.conf(101).read_text().replace(loop_device.name, "vzgone9")
    vz_env.conf(101).write_text(config)
    refused = vzctl("start", 101, check=False)
    assert refused.returncode == 21, refused.stderr
    assert "CT 101" in refused.stderr and "/dev/vzgone9 does not exist" in refused.stderr
    assert not vz_env.state(101).exists()


def test_fuse_is_granted_and_mounts_in_a_user_namespace(ct: RunningCt) -> None:
    """The docs/devices.md recipe: /dev/fuse opens in both profiles once granted; a FUSE
    file system mounts in a user-namespace CT (FUSE is mountable there), not in a
    privileged one, whose filter refuses mount(2) altogether."""
    assert ct.probe("open", "/dev/fuse", "rw") in ("ENOENT",)
    ct.vzctl("set", ct.ctid, "--devnodes", "fuse:rw")
    assert ct.probe("open", "/dev/fuse", "rw") == "ok"
    ct.sh("mkdir -p /tmp/fusemnt")
    verdict = ct.probe("fuse", "/tmp/fusemnt")
    assert verdict == ("ok" if ct.profile == "userns" else "EPERM"), verdict
