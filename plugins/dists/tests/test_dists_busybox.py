"""The dists plugin on a real busybox CT: the files at start and on a live set, the CT's
own ``ifup -a`` agreeing with the host's setup, and ``--userpasswd`` on a running and a
stopped CT, with bad input refused and nothing changed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from dists_helpers import crypt_matches, shadow_hash, snapshot

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "openat2")]


CT = 101
CT_IP = "10.199.9.2"


def sh(vzctl: Vzctl, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return vzctl("exec", CT, command, check=check)


@pytest.fixture
def running(vzctl: Vzctl, vz_env: VzEnv) -> Iterator[int]:
    vz_env.write_vz_conf(NEIGHBOUR_DEVS="none")
    vzctl("create", CT, "--ostemplate", "busybox", "--hostname", "web101.example.org",
          "--ipadd", CT_IP, "--nameserver", "10.199.9.53", "--searchdomain", "example.org")
    vzctl("start", CT)
    yield CT
    vzctl("stop", "--fast", CT, check=False)


def test_files_at_start_agree_with_the_host_setup(vzctl: Vzctl, running: int) -> None:
    assert sh(vzctl, "cat /etc/hostname").stdout == "web101.example.org\n"
    assert f"{CT_IP}\tweb101.example.org web101" in sh(vzctl, "cat /etc/hosts").stdout
    assert sh(vzctl, "cat /etc/resolv.conf").stdout == "search example.org\nnameserver 10.199.9.53\n"
    interfaces = sh(vzctl, "cat /etc/network/interfaces").stdout
    assert f"iface venet0 inet manual\n\tup ip link set dev venet0 up\n" \
           f"\tup ip addr replace {CT_IP}/32 dev venet0\n" in interfaces
    before = sh(vzctl, "ip addr show venet0; ip route").stdout
    # the CT's own configuration run inside (as its boot would) neither fails nor changes
    # what the host made
    sh(vzctl, "ifup -a")
    assert sh(vzctl, "ip addr show venet0; ip route").stdout == before
    # and it recreates the address when it is gone
    sh(vzctl, f"ip addr del {CT_IP}/32 dev venet0")
    sh(vzctl, "ifup -f venet0")
    assert sh(vzctl, "ip addr show venet0; ip route").stdout == before


def test_live_set_rewrites_the_files(vzctl: Vzctl, running: int) -> None:
    vzctl("set", CT, "--ipadd", "10.199.9.3", "--hostname", "db", "--nameserver", "10.199.9.54")
    assert sh(vzctl, "cat /etc/hostname").stdout == "db\n"
    hosts = sh(vzctl, "cat /etc/hosts").stdout
    assert f"{CT_IP}\tdb" in hosts and "web101" not in hosts
    assert "replace 10.199.9.3/32 dev venet0" in sh(vzctl, "cat /etc/network/interfaces").stdout
    assert sh(vzctl, "cat /etc/resolv.conf").stdout == "search example.org\nnameserver 10.199.9.54\n"
    vzctl("set", CT, "--ipdel", "all")
    assert "10.199.9" not in sh(vzctl, "cat /etc/network/interfaces").stdout


@pytest.mark.needs("veth")
def test_veth_ifaddr_stanza_brings_the_address_up_inside(vzctl: Vzctl, running: int) -> None:
    vzctl("set", CT, "--netif_add", "eth0", "--save")
    assert "eth0" not in sh(vzctl, "cat /etc/network/interfaces").stdout, \
        "a veth without --ifaddr is the CT administrator's"
    vzctl("set", CT, "--ifname", "eth0", "--ifaddr", "192.168.5.2/24", "--save")
    stanza = sh(vzctl, "cat /etc/network/interfaces").stdout
    assert "iface eth0 inet manual\n\tup ip link set dev eth0 up\n" \
           "\tup ip addr replace 192.168.5.2/24 dev eth0\n" in stanza
    # the host only filters by --ifaddr; the CT's own configuration brings it up
    sh(vzctl, "ifup eth0")
    assert "inet 192.168.5.2/24" in sh(vzctl, "ip addr show dev eth0").stdout
    vzctl("set", CT, "--netif_del", "eth0", "--save")
    assert "eth0" not in sh(vzctl, "cat /etc/network/interfaces").stdout


def test_userpasswd_on_a_running_ct(vzctl: Vzctl, vz_env: VzEnv, running: int) -> None:
    vzctl("set", CT, "--userpasswd", "root:first pass")
    hashed = sh(vzctl, "grep ^root: /etc/shadow").stdout.split(":")[1]
    assert hashed.startswith("$6$") and crypt_matches("first pass", hashed)
    # busybox's own crypt accepts it: the CT's mkpasswd gives the same hash for the salt
    salt = hashed.rsplit("$", 1)[0]
    assert sh(vzctl, f"mkpasswd -m sha512 'first pass' '{salt.split('$')[2]}'").stdout.strip() \
        == hashed
    assert "USERPASSWD" not in vz_env.conf(CT).read_text()
    assert "first pass" not in vz_env.conf(CT).read_text()


def test_userpasswd_on_a_stopped_ct(vzctl: Vzctl, vz_env: VzEnv) -> None:
    vzctl("create", CT, "--ostemplate", "busybox")
    vzctl("set", CT, "--userpasswd", "root:pw1", "--userpasswd", "nobody:pw2")
    private = vz_env.private(CT)
    assert crypt_matches("pw1", shadow_hash(private, "root"))
    assert crypt_matches("pw2", shadow_hash(private, "nobody"))
    assert "USERPASSWD" not in vz_env.conf(CT).read_text()
    assert not vz_env.ct_root(CT).is_mount() and "down" in vzctl("status", CT).stdout, \
        "the stopped CT was mounted for the change only"
    vzctl("set", CT, "--userpasswd", "root:pw3", "--description", "x", "--save")
    assert crypt_matches("pw3", shadow_hash(private, "root"))
    conf = vz_env.conf(CT).read_text()
    assert 'DESCRIPTION="x"' in conf and "USERPASSWD" not in conf and "pw3" not in conf


@pytest.mark.parametrize(("value", "message"), [
    ("nosuch:pw", "no user nosuch in the CT's /etc/passwd"),
    ("root", "expected USER:PASSWORD"),
    ("root:a:b", "contains ':'"),
    ("root:a\nb", "contains '\\n'"),
    ("root:", "is empty"),
])
def test_bad_userpasswd_refused_with_nothing_changed(vzctl: Vzctl, vz_env: VzEnv, value: str,
                                                     message: str) -> None:
    vzctl("create", CT, "--ostemplate", "busybox")
    before = snapshot(vz_env.private(CT) / "etc")
    conf = vz_env.conf(CT).read_text()
    for state in ("stopped", "running"):
        result = vzctl("set", CT, "--userpasswd", value, "--hostname", "changed", check=False)
        assert result.returncode == 21, result.stderr
        assert f"CT {CT}" in result.stderr and "--userpasswd" in result.stderr
        assert message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        if state == "stopped":
            assert snapshot(vz_env.private(CT) / "etc") == before
            assert vz_env.conf(CT).read_text() == conf
            assert not vz_env.ct_root(CT).is_mount()
            vzctl("start", CT)
            before = snapshot(vz_env.private(CT) / "etc")
        else:
            assert snapshot(vz_env.private(CT) / "etc") == before
            assert sh(vzctl, "hostname").stdout != "changed\n"
    vzctl("stop", "--fast", CT)
