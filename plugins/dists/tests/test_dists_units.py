"""The dists plugin without root: file contents, each distribution's actions on a small
tree (written as expected, idempotent, never through a link out of the CT), the choice of
distribution, and the --userpasswd grammar and hashing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dists_helpers import (
    BUSYBOX_FILES,
    DEBIAN_FILES,
    crypt_matches,
    make_tree,
    shadow_hash,
    snapshot,
)

from vzcore.errors import InvalidValue
from vzcore.plugin.manager import load_plugins
from vzcore.plugin.registry import Registry
from vzcore_dists import busybox, content, debian, default, passwd, select
from vzcore_dists.tree import CtTree

OWNER = (os.getuid(), os.getgid())
VENET = content.Interface("venet0", ("10.199.2.1/32", "fd99::2/128"), default_route=True)
VETH = content.Interface("eth0", ("192.168.5.2/24",))


def tree_of(root: Path) -> CtTree:
    return CtTree(root, ctid=201, owner=OWNER)


# -- content -----------------------------------------------------------------------------------


def test_hosts_file_keeps_other_lines_and_replaces_the_managed_one() -> None:
    first = content.hosts_content("10.0.0.9 db\n", "web.example.org", "10.199.1.2")
    assert first.splitlines() == ["127.0.0.1\tlocalhost", "10.0.0.9 db", content.HOSTS_MARKER,
                                  "10.199.1.2\tweb.example.org web"]
    second = content.hosts_content(first, "other", None)
    assert second.splitlines()[-2:] == [content.HOSTS_MARKER, "127.0.1.1\tother"]
    assert second.count(content.HOSTS_MARKER) == 1


def test_resolv_conf_replaces_only_what_is_given() -> None:
    old = "# mine\nsearch a.example\nnameserver 1.1.1.1\noptions rotate\n"
    assert content.resolv_content(old, ["10.0.0.53"], None) == \
        "# mine\nsearch a.example\noptions rotate\nnameserver 10.0.0.53\n"
    assert content.resolv_content(old, None, ["b.example", "c.example"]) == \
        "search b.example c.example\n# mine\nnameserver 1.1.1.1\noptions rotate\n"


def test_interfaces_from_the_config() -> None:
    interfaces = content.interfaces_of("10.199.2.1 fd99::2 10.199.3.1/24",
                                       {"eth0": ["192.168.5.2/24"], "eth1": []})
    assert interfaces == [
        content.Interface("venet0", ("10.199.2.1/32", "fd99::2/128", "10.199.3.1/24"), True),
        content.Interface("eth0", ("192.168.5.2/24",))]
    assert content.first_ipv4("fd99::2 10.199.2.1") == "10.199.2.1"
    assert content.interfaces_of(None, {}) == []


def test_ifupdown_stanzas_repeat_the_host_setup_idempotently() -> None:
    text = content.ifupdown_stanzas(201, [VENET, VETH])
    assert "auto venet0\niface venet0 inet manual\n\tup ip link set dev venet0 up\n" \
           "\tup ip addr replace 10.199.2.1/32 dev venet0\n" \
           "\tup ip -6 addr replace fd99::2/128 dev venet0 nodad\n" \
           "\tup ip route replace default dev venet0\n" in text
    assert "iface eth0 inet manual" in text and "replace 192.168.5.2/24 dev eth0" in text
    assert " add " not in text and "inet static" not in text, "'add' fails on the host's addresses"
    odd = content.ifupdown_stanzas(201, [content.Interface("e$(x)", ("10.0.0.1/32",))])
    assert "\tup ip link set dev 'e$(x)' up\n\tup ip addr replace 10.0.0.1/32 dev 'e$(x)'\n" in odd


def test_networkd_unit_keeps_the_host_configuration() -> None:
    unit = content.networkd_unit(201, VENET)
    assert "[Match]\nName=venet0\n" in unit
    assert "Address=10.199.2.1/32\nAddress=fd99::2/128\nKeepConfiguration=yes\n" in unit
    assert "Destination=0.0.0.0/0" in unit and "Destination=::/0" in unit


def test_source_line_added_once() -> None:
    assert content.ensure_source_line(DEBIAN_FILES["etc/network/interfaces"],
                                      "/etc/network/interfaces.d") == \
        DEBIAN_FILES["etc/network/interfaces"]
    own = content.ensure_source_line("auto lo\niface lo inet loopback", "/etc/network/interfaces.d")
    assert own == "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n"
    assert content.ensure_source_line(own, "/etc/network/interfaces.d") == own
    assert content.ensure_source_line(None, "/etc/network/interfaces.d").endswith(
        "\nsource /etc/network/interfaces.d/*\n")


def test_shadow_update() -> None:
    passwd_text = DEBIAN_FILES["etc/passwd"]
    shadow, same = content.shadow_content(passwd_text, DEBIAN_FILES["etc/shadow"],
                                          {"root": "$y$x", "admin": "$y$z"}, 20800)
    assert same == passwd_text
    assert shadow is not None
    assert shadow.splitlines() == ["root:$y$x:20800:0:99999:7:::", "daemon:*:20793:0:99999:7:::",
                                   "sshd:!:20793::::::", "admin:$y$z:20800:0:99999:7:::"]
    with pytest.raises(content.UnknownUser, match="nobody"):
        content.shadow_content(passwd_text, shadow, {"nobody": "$y$x"}, 1)
    no_shadow, new_passwd = content.shadow_content("root:x:0:0::/root:/bin/sh\n", None,
                                                   {"root": "$6$a"}, 1)
    assert no_shadow is None and new_passwd == "root:$6$a:0:0::/root:/bin/sh\n"


# -- choice of distribution -----------------------------------------------------------------------


def test_distribution_from_ostemplate_then_os_release(tmp_path: Path) -> None:
    assert select.candidates("debian-12-x86_64-minimal") == [
        "debian-12-x86_64-minimal", "debian-12-x86_64", "debian-12", "debian"]
    assert select.from_template("debian-12-x86_64-minimal") is debian
    assert select.from_template("busybox") is busybox
    assert select.from_template("centos-7-x86_64") is None
    deb = make_tree(tmp_path / "deb", DEBIAN_FILES)
    ubuntu = make_tree(tmp_path / "ubuntu", {**DEBIAN_FILES, "etc/os-release":
                                              "ID=ubuntu\nID_LIKE=debian\n"})
    other = make_tree(tmp_path / "other", {**BUSYBOX_FILES, "etc/os-release": "ID=alpine\n"})
    with tree_of(deb) as t1, tree_of(ubuntu) as t2, tree_of(other) as t3:
        assert select.dist_for("my-own-template", t1) is debian
        assert select.dist_for(None, t2) is debian
        assert select.dist_for(None, t3) is default
        assert select.dist_for("busybox", t1) is busybox, "OSTEMPLATE comes first"


# -- actions on trees -------------------------------------------------------------------------------


@pytest.fixture
def deb_root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "root", DEBIAN_FILES)


@pytest.fixture
def bb_root(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "root", BUSYBOX_FILES)


def run_all(dist: object, root: Path, pairs: list[passwd.UserPass] | None = None) -> None:
    with tree_of(root) as tree:
        dist.set_hostname(tree, "web201.example.org", "10.199.2.1")  # type: ignore[attr-defined]
        dist.set_addresses(tree, [VENET, VETH])  # type: ignore[attr-defined]
        dist.set_dns(tree, ["10.199.0.53"], ["example.org"])  # type: ignore[attr-defined]


@pytest.mark.needs("openat2")
def test_debian_ifupdown_files(deb_root: Path) -> None:
    run_all(debian, deb_root)
    assert (deb_root / "etc/hostname").read_text() == "web201.example.org\n"
    assert "10.199.2.1\tweb201.example.org web201" in (deb_root / "etc/hosts").read_text()
    assert (deb_root / "etc/resolv.conf").read_text() == \
        "search example.org\nnameserver 10.199.0.53\n"
    ours = (deb_root / "etc/network/interfaces.d/vzcore").read_text()
    assert ours == content.ifupdown_stanzas(201, [VENET, VETH])
    assert (deb_root / "etc/network/interfaces").read_text() == \
        DEBIAN_FILES["etc/network/interfaces"], "Debian's file already sources interfaces.d"
    before = snapshot(deb_root)
    run_all(debian, deb_root)
    assert snapshot(deb_root) == before, "a second run rewrites nothing"
    with tree_of(deb_root) as tree:
        debian.set_addresses(tree, [])
    assert "iface" not in (deb_root / "etc/network/interfaces.d/vzcore").read_text()


@pytest.mark.needs("openat2")
def test_debian_networkd_units(deb_root: Path) -> None:
    wants = deb_root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "systemd-networkd.service").symlink_to("/lib/systemd/system/systemd-networkd.service")
    run_all(debian, deb_root)
    unit = deb_root / "etc/systemd/network/10-vzcore-venet0.network"
    assert unit.read_text() == content.networkd_unit(201, VENET)
    assert (deb_root / "etc/systemd/network/10-vzcore-eth0.network").exists()
    assert not (deb_root / "etc/network/interfaces.d/vzcore").exists()
    before = snapshot(deb_root)
    run_all(debian, deb_root)
    assert snapshot(deb_root) == before
    with tree_of(deb_root) as tree:
        debian.set_addresses(tree, [VENET])
    assert not (deb_root / "etc/systemd/network/10-vzcore-eth0.network").exists()
    assert unit.exists()


@pytest.mark.needs("openat2")
def test_busybox_files(bb_root: Path) -> None:
    run_all(busybox, bb_root)
    assert (bb_root / "etc/hostname").read_text() == "web201.example.org\n"
    hosts = (bb_root / "etc/hosts").read_text()
    assert hosts.startswith(BUSYBOX_FILES["etc/hosts"]) and "10.199.2.1\tweb201" in hosts
    interfaces = (bb_root / "etc/network/interfaces").read_text()
    assert "iface lo" not in interfaces and "iface venet0 inet manual" in interfaces
    assert (bb_root / "etc/network/if-pre-up.d").is_dir()
    before = snapshot(bb_root)
    run_all(busybox, bb_root)
    assert snapshot(bb_root) == before
    (bb_root / "etc/network/interfaces").write_text("# mine\n")
    with tree_of(bb_root) as tree:
        busybox.set_addresses(tree, [VENET])
    assert (bb_root / "etc/network/interfaces").read_text() == "# mine\n", "the admin's own file"


@pytest.mark.needs("openat2")
def test_no_write_through_a_link_out_of_the_ct(bb_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "host-file"
    outside.write_text("host secret\n")
    (bb_root / "etc/resolv.conf").unlink()
    (bb_root / "etc/resolv.conf").symlink_to(outside)          # absolute: resolved inside
    (bb_root / "etc/hosts").unlink()
    (bb_root / "etc/hosts").symlink_to("../../../host-file")     # relative: stops at the root
    (bb_root / "etc/shadow").unlink()
    (bb_root / "etc/shadow").symlink_to(outside)
    run_all(busybox, bb_root)
    with tree_of(bb_root) as tree:
        busybox.set_userpass(tree, [passwd.UserPass("root", "pw")])
    assert outside.read_text() == "host secret\n"
    assert not (bb_root / "etc/resolv.conf").is_symlink()
    assert (bb_root / "etc/resolv.conf").read_text() == "search example.org\nnameserver 10.199.0.53\n"
    assert "127.0.0.1\tlocalhost" in (bb_root / "etc/hosts").read_text()


# -- passwords ----------------------------------------------------------------------------------------


@pytest.mark.needs("openat2")
def test_passwords_per_distribution(deb_root: Path, tmp_path: Path) -> None:
    with tree_of(deb_root) as tree:
        assert debian.password_method(tree) == "yescrypt", "pam_unix's method, as passwd uses"
        debian.set_userpass(tree, [passwd.UserPass("root", "s3cret pw"),
                                   passwd.UserPass("admin", "other")])
    root_hash = shadow_hash(deb_root, "root")
    assert root_hash.startswith("$y$") and crypt_matches("s3cret pw", root_hash)
    assert crypt_matches("other", shadow_hash(deb_root, "admin")), "a line added for admin"
    assert ((deb_root / "etc/shadow").stat().st_mode & 0o777) == 0o640
    assert "s3cret" not in (deb_root / "etc/shadow").read_text()
    bb = make_tree(tmp_path / "bb", BUSYBOX_FILES)
    with tree_of(bb) as tree:
        busybox.set_userpass(tree, [passwd.UserPass("root", "pw")])
    assert shadow_hash(bb, "root").startswith("$6$"), "busybox's crypt has no yescrypt"
    assert crypt_matches("pw", shadow_hash(bb, "root"))


@pytest.mark.needs("openat2")
def test_unknown_user_refused_with_nothing_changed(deb_root: Path) -> None:
    before = snapshot(deb_root)
    with tree_of(deb_root) as tree, pytest.raises(InvalidValue, match="no user nosuch in the CT"):
        debian.set_userpass(tree, [passwd.UserPass("root", "pw"), passwd.UserPass("nosuch", "pw")])
    assert snapshot(deb_root) == before


@pytest.mark.parametrize(("text", "message"), [
    ("root", "expected USER:PASSWORD"),
    (":pw", "is not a user name"),
    ("ro ot:pw", "is not a user name"),
    ("root:", "is empty"),
    ("root:a:b", "contains ':'"),
    ("root:a\nb", "contains '\\\\n'"),
])
def test_userpasswd_grammar(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        passwd.UserPassType().parse(text)
    assert "pw" not in str(info.value) or text.startswith(("ro ot", ":")), "no password echoed"


def test_userpasswd_is_never_saved() -> None:
    registry = Registry.build(load_plugins({"PLUGINS": "vzcore_dists.plugin"}, autoload=False))
    param = registry.parameters["userpasswd"]
    assert not param.saved and param.live and param.multiple and not param.on_create
    changes, _ = registry.plan_changes(101, {}, {"userpasswd": ["root:a", "admin:b"]}, verb="set")
    assert [(p.user, p.password) for p in passwd.parse_text(changes["USERPASSWD"].new)] == \
        [("root", "a"), ("admin", "b")]
    assert "<hidden>" in repr(passwd.UserPass("root", "secret"))


def test_hash_is_salted_and_verifies() -> None:
    first, second = (passwd.hash_password("pw", "sha512") for _ in range(2))
    assert first != second and crypt_matches("pw", first) and crypt_matches("pw", second)


@pytest.mark.needs("openat2")
def test_debian_mailname_follows_the_host_name_only_where_an_mta_made_one(deb_root: Path) -> None:
    run_all(debian, deb_root)
    assert not (deb_root / "etc/mailname").exists(), "no MTA: no mail name is made"
    (deb_root / "etc/mailname").write_text("localhost\n")
    run_all(debian, deb_root)
    assert (deb_root / "etc/mailname").read_text() == "web201.example.org\n"
