"""--hostname, --nameserver and --searchdomain in the CT's files, at start and live."""

from __future__ import annotations

import re

import pytest
from network_helpers import Net

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "openat2", "veth")]


def test_files_at_start_and_live(net: Net) -> None:
    net.create(101, "--hostname", "web.example.org", "--ipadd", "10.199.1.2",
               "--nameserver", "10.199.0.53", "--searchdomain", "example.org")
    net.vzctl("start", 101)
    assert net.sh(101, "cat /etc/hostname").stdout == "web.example.org\n"
    assert "10.199.1.2\tweb.example.org web" in net.sh(101, "cat /etc/hosts").stdout
    assert net.sh(101, "cat /etc/resolv.conf").stdout == \
        "search example.org\nnameserver 10.199.0.53\n"
    owners = net.sh(101, "stat -c %u:%g /etc/hostname /etc/hosts /etc/resolv.conf").stdout
    assert owners.split() == ["0:0"] * 3, "the files belong to the CT's root, not the host's"
    local_uid = int(re.search(r'^LOCAL_UID="(\d+)"', net.conf_text(101), re.M).group(1))  # type: ignore[union-attr]
    assert local_uid > 0, "the default CT has a user namespace: its root is not the host's"
    on_host = (net.env.private(101) / "etc" / name for name in ("hostname", "hosts", "resolv.conf"))
    assert [path.stat().st_uid for path in on_host] == [local_uid] * 3
    net.vzctl("set", 101, "--nameserver", "10.199.0.54", "--nameserver", "fd99::53")
    assert net.sh(101, "cat /etc/resolv.conf").stdout == \
        "search example.org\nnameserver 10.199.0.54\nnameserver fd99::53\n"
    assert 'NAMESERVER="10.199.0.53"' in net.conf_text(101), "without --save: config kept"
    net.vzctl("set", 101, "--hostname", "db", "--save")
    assert net.sh(101, "cat /etc/hostname").stdout == "db\n"
    assert net.sh(101, "hostname").stdout == "db\n"
    hosts = net.sh(101, "cat /etc/hosts").stdout
    assert "\tdb" in hosts and "web.example.org" not in hosts and "localhost" in hosts


def test_a_planted_link_is_not_followed_out_of_the_ct(net: Net) -> None:
    secret = net.env.root / "host-secret"
    secret.write_text("host data\n")
    net.create(101, "--nameserver", "10.199.0.53")
    net.vzctl("start", 101)
    # the CT's root points its resolv.conf at a host path (absolute and relative)
    net.sh(101, f"ln -sf {secret} /etc/resolv.conf && ln -sf ../../../../../{secret} /etc/hosts")
    net.vzctl("set", 101, "--nameserver", "10.199.0.54", "--hostname", "ct101")
    assert secret.read_text() == "host data\n"
    assert net.sh(101, "cat /etc/resolv.conf").stdout == "nameserver 10.199.0.54\n"
    assert net.sh(101, "test -L /etc/resolv.conf", check=False).returncode == 1
    net.vzctl("stop", "--fast", 101)
    net.vzctl("start", 101)  # the next start writes them the same safe way
    assert secret.read_text() == "host data\n"
