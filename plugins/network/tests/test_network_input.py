"""Bad input is refused with a clear message and changes nothing, running or not."""

from __future__ import annotations

import re

import pytest
from network_helpers import Net, links, routes

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox")]


def inside(net: Net) -> list[str]:
    """The CT's devices and addresses (without flags that change by themselves, such as
    an IPv6 link-local address leaving the "tentative" state)."""
    text = net.sh(101, "ip addr; ls /sys/class/net").stdout
    return sorted(re.findall(r"^\d+: (\S+):|inet6? (\S+)|^(\w+)$", text, re.MULTILINE))


@pytest.fixture
def two(net: Net, bridge: str) -> Net:
    net.create(101, "--ipadd", "10.199.1.2", "--netif_add", f"eth0,,,,{bridge}")
    net.create(102, "--ipadd", "10.199.1.3")
    net.vzctl("start", 101)
    return net


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--ipadd", "10.199.1"), 21, "invalid value for --ipadd: '10.199.1' is not an IPv4 or IPv6"),
    (("--ipadd", "10.199.1.2/40"), 21, "is not a prefix length"),
    (("--ipadd", "10.199.1.3"), 78, "10.199.1.3 is already used by CT 102"),
    (("--ipadd", "10.199.0.1"), 78, "already in use by the host itself"),
    (("--ipdel", "10.199.9.9"), 21, "10.199.9.9 is not an address of the CT"),
    (("--netif_add", "eth1,,,,vzt-nobridge"), 130, "bridge vzt-nobridge does not exist"),
    (("--netif_add", "eth1,,,,lo"), 130, "lo is not a bridge"),
    (("--netif_add", "eth0"), 21, "interface eth0 is already configured"),
    (("--netif_add", "eth1,,vzt-up0"), 130, "the host already has an interface named vzt-up0"),
    (("--ifname", "eth0", "--bridge", "vzt-nobridge"), 130, "bridge vzt-nobridge does not exist"),
    (("--mac", "00:18:51:00:00:01"), 21, "--mac needs --ifname"),
    (("--nameserver", "not-an-address"), 21, "is not an IP address"),
])
def test_refused_and_nothing_changes(two: Net, args: tuple[str, ...], code: int,
                                     message: str) -> None:
    conf_before = two.conf_text(101)
    links_before = links()
    routes_before = routes()
    inside_before = inside(two)
    refused = two.vzctl("set", 101, *args, "--save", check=False)
    assert refused.returncode == code, refused.stderr
    assert message in refused.stderr
    assert "CT 101" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, "one line, no traceback"
    assert two.conf_text(101) == conf_before
    assert links() == links_before and routes() == routes_before
    assert inside(two) == inside_before


def test_create_refuses_an_address_of_another_ct(two: Net) -> None:
    refused = two.vzctl("create", 103, "--ostemplate", "busybox", "--ipadd", "10.199.1.2",
                        check=False)
    assert refused.returncode == 78 and "already used by CT 101" in refused.stderr
    assert not two.env.conf(103).exists()
