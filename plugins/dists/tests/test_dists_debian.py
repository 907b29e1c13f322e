"""The dists plugin on a Debian 12 CT: its files at start and live, ifupdown inside
agreeing with the host's setup, and ``--userpasswd`` proved by an ``ssh`` login (sshpass)
from the test's own network namespace.

The CT comes from the ``debian_template`` fixture of ``vzcore.testing`` (the test
templates contrib/test.sh builds).  ``test_ssh_into_a_booted_ct`` boots the CT's own
init (``vzctl start --wait``); the others start the CT with a small shell init instead
and start sshd by hand through ``vzctl exec``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest
from dists_helpers import crypt_matches, shadow_hash

from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore.testing.templates import DebianTemplate

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("openat2", "veth")]

CT = 201
CT_IP = "10.199.9.20"
HOST_IP = "10.199.9.1"
UPLINK = ("vzt-dst0", "vzt-dst1")
SIMPLE_INIT = "#!/bin/sh\n# test init: no systemd\ntrap 'exit 0' TERM INT\n" \
              "while :; do sleep 3600 & wait $!; done\n"


def ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True)


@pytest.fixture
def debian_ct(vz_env: VzEnv, debian_template: Callable[[str], DebianTemplate]) -> Callable[[str], str]:
    """``debian_ct(init)``: the name of a Debian 12 template of init kind ``init`` usable
    as --ostemplate in ``vz_env``."""

    def get(init: str = "systemd") -> str:
        template = debian_template(init)
        template.install(vz_env)
        return template.name

    return get


@pytest.fixture
def uplink(vz_env: VzEnv) -> Iterator[str]:
    """A source address for the "host" in the test's namespace, and no neighbour proxies."""
    vz_env.write_vz_conf(NEIGHBOUR_DEVS="none")
    ip("link", "del", UPLINK[0], check=False)
    ip("link", "add", UPLINK[0], "type", "veth", "peer", "name", UPLINK[1])
    ip("addr", "add", f"{HOST_IP}/24", "dev", UPLINK[0])
    ip("link", "set", UPLINK[0], "up")
    ip("link", "set", UPLINK[1], "up")
    yield UPLINK[0]
    ip("link", "del", UPLINK[0], check=False)


def sh(vzctl: Vzctl, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return vzctl("exec", CT, command, check=check)


def ssh(user: str, password: str, command: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("sshpass") is None or shutil.which("ssh") is None:
        pytest.skip("needs the Debian packages sshpass and openssh-client on the host")
    return subprocess.run(
        ["sshpass", "-p", password, "ssh", "-o", "StrictHostKeyChecking=no", "-o",
         "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
         "-o", "PreferredAuthentications=password,keyboard-interactive",
         "-o", "PubkeyAuthentication=no", f"{user}@{CT_IP}", command],
        capture_output=True, text=True, timeout=60, check=False)


def simple_init(vz_env: VzEnv) -> None:
    """Replace the CT's /sbin/init (systemd) by a shell loop, owned by the CT's root."""
    private = vz_env.private(CT)
    init = private / "sbin/init"
    init.unlink()
    init.write_text(SIMPLE_INIT)
    owner = (private / "etc").stat()
    os.chown(init, owner.st_uid, owner.st_gid)
    init.chmod(0o755)


def test_debian_files_ifupdown_and_ssh_login(vzctl: Vzctl, vz_env: VzEnv,
                                             debian_ct: Callable[[str], str], uplink: str) -> None:
    vzctl("create", CT, "--ostemplate", debian_ct("systemd"), "--ipadd", CT_IP, "--ipadd", "fd99:9::20",
          "--hostname", "web201", "--nameserver", "10.199.9.53", "--searchdomain", "example.org")
    simple_init(vz_env)
    vzctl("start", CT)
    try:
        assert sh(vzctl, "cat /etc/hostname").stdout == "web201\n"
        assert f"{CT_IP}\tweb201" in sh(vzctl, "cat /etc/hosts").stdout
        assert sh(vzctl, "cat /etc/resolv.conf").stdout == \
            "search example.org\nnameserver 10.199.9.53\n"
        stanza = sh(vzctl, "cat /etc/network/interfaces.d/vzcore").stdout
        assert "iface venet0 inet manual" in stanza and f"replace {CT_IP}/32 dev venet0" in stanza
        state = "ip addr show dev venet0 | grep inet; ip -4 route show default | cut -d' ' -f1-3; " \
                "ip -6 route show default | cut -d' ' -f1-3"
        before = sh(vzctl, state).stdout
        assert CT_IP in before and "fd99:9::20/128" in before
        assert before.count("default dev venet0") == 2, before
        # Debian's networking.service runs 'ifup -a' at boot: it must succeed and agree
        sh(vzctl, "ifup -a")
        assert sh(vzctl, state).stdout == before
        sh(vzctl, f"ip addr del {CT_IP}/32 dev venet0; ifdown venet0; ifup venet0")
        assert sh(vzctl, state).stdout == before, "the CT's own config recreates it"
        vzctl("set", CT, "--ipadd", "10.199.9.21", "--hostname", "db201")
        assert "replace 10.199.9.21/32 dev venet0" in \
            sh(vzctl, "cat /etc/network/interfaces.d/vzcore").stdout
        assert sh(vzctl, "cat /etc/hostname").stdout == "db201\n"

        refused = vzctl("set", CT, "--userpasswd", "admin:pw", check=False)
        assert refused.returncode == 21 and "no user admin in the CT's /etc/passwd" in refused.stderr
        sh(vzctl, "useradd -m -s /bin/sh admin")
        vzctl("set", CT, "--userpasswd", "admin:s3cret word")
        hashed = sh(vzctl, "grep ^admin: /etc/shadow").stdout.split(":")[1]
        assert hashed.startswith("$y$"), "Debian 12's PAM hashes with yescrypt"
        assert sh(vzctl, "stat -c %U:%G:%a /etc/shadow").stdout == "root:shadow:640\n"
        # sshd started by hand (the CT's systemd does not run here); it daemonizes
        sh(vzctl, "mkdir -p /run/sshd && ssh-keygen -A >/dev/null && /usr/sbin/sshd")
        login = ssh("admin", "s3cret word", "id -un; hostname")
        assert login.returncode == 0, login.stderr
        assert login.stdout == "admin\ndb201\n"
        assert ssh("admin", "wrong", "true").returncode != 0
        vzctl("set", CT, "--userpasswd", "admin:changed")
        again = ssh("admin", "changed", "id -un")
        assert again.stdout == "admin\n", (again.stderr, sh(vzctl, "grep ^admin: /etc/shadow").stdout)
    finally:
        vzctl("stop", "--fast", CT)
    # a stopped CT: mounted for the change only, root's hash as the CT's PAM says
    vzctl("set", CT, "--userpasswd", "root:stopped pw")
    root_hash = shadow_hash(vz_env.private(CT), "root")
    assert root_hash.startswith("$y$") and crypt_matches("stopped pw", root_hash)
    assert not vz_env.ct_root(CT).is_mount()
    assert "USERPASSWD" not in vz_env.conf(CT).read_text()


@pytest.mark.parametrize("init", ["systemd", "sysvinit"])
def test_ssh_into_a_booted_ct(vzctl: Vzctl, vz_env: VzEnv, debian_ct: Callable[[str], str],
                              uplink: str, init: str) -> None:
    """The acceptance check: the CT's own init brings up its network from the files the
    actions wrote (ifupdown records venet0 as up, so 'ifup -a' succeeded on it) and starts
    sshd; the password set by --userpasswd logs in over ssh."""
    vzctl("create", CT, "--ostemplate", debian_ct(init), "--ipadd", CT_IP, "--hostname", "web201")
    vzctl("set", CT, "--userpasswd", "root:root pw")  # stopped: mounted for it
    assert crypt_matches("root pw", shadow_hash(vz_env.private(CT), "root"))
    vzctl("start", CT, "--wait", timeout=180)
    try:
        assert sh(vzctl, "cat /run/network/ifstate.venet0").stdout == "venet0\n", \
            "the CT's boot ran ifup on venet0 and it succeeded"
        assert sh(vzctl, "hostname").stdout == "web201\n"
        sh(vzctl, "useradd -m -s /bin/sh admin")
        vzctl("set", CT, "--userpasswd", "admin:s3cret word")
        login = ssh("admin", "s3cret word", "id -un; hostname")
        assert login.returncode == 0, login.stderr
        assert login.stdout == "admin\nweb201\n"
        # a live change, then the CT's own network service restarted: both agree
        vzctl("set", CT, "--ipadd", "10.199.9.21", "--save")
        sh(vzctl, "service networking restart")
        addresses = sh(vzctl, "ip -4 addr show dev venet0").stdout
        assert f"{CT_IP}/32" in addresses and "10.199.9.21/32" in addresses, addresses
        assert ssh("admin", "s3cret word", "id -un").stdout == "admin\n"
    finally:
        vzctl("stop", "--fast", CT)


def test_networkd_in_a_booted_ct_keeps_the_host_setup(vzctl: Vzctl, vz_env: VzEnv,
                                                       debian_ct: Callable[[str], str],
                                                       uplink: str) -> None:
    """A CT that uses systemd-networkd (enabled, ifupdown's networking.service not) gets
    .network units; networkd configures venet0 from them without removing what the host
    made, and the CT stays reachable."""
    vzctl("create", CT, "--ostemplate", debian_ct("systemd"), "--ipadd", CT_IP,
          "--ipadd", "fd99:9::20")
    etc = vz_env.private(CT) / "etc/systemd/system"
    (etc / "multi-user.target.wants/networking.service").unlink()
    (etc / "multi-user.target.wants/systemd-networkd.service").symlink_to(
        "/lib/systemd/system/systemd-networkd.service")
    vzctl("start", CT, "--wait", timeout=180)
    try:
        unit = sh(vzctl, "cat /etc/systemd/network/10-vzcore-venet0.network").stdout
        assert f"Address={CT_IP}/32" in unit and "KeepConfiguration=yes" in unit
        assert sh(vzctl, "systemctl is-active systemd-networkd").stdout == "active\n"
        status = sh(vzctl, "networkctl status venet0 --no-pager", check=False).stdout
        assert "State: routable (configured)" in status, status
        state = sh(vzctl, "ip addr show dev venet0; ip route; ip -6 route show default").stdout
        assert CT_IP in state and "fd99:9::20" in state, state
        assert "default dev venet0" in state, state
        with socket.create_connection((CT_IP, 22), timeout=20) as conn:  # the CT's sshd
            assert conn.recv(64).startswith(b"SSH-2.0-")
    finally:
        vzctl("stop", "--fast", CT)
