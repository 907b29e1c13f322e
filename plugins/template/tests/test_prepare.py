"""What ``template create`` changes in a debootstrapped tree, on a small tree made like
one (the real trees are checked in test_debian_templates.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vzcore_template import names
from vzcore_template.build import Request
from vzcore_template.mirror import Mirrors
from vzcore_template.prepare import prepare

EXIM_TEMPLATE = """\
begin transports

# This transport is used for delivering messages over SMTP connections.

remote_smtp:
  debug_print = "T: remote_smtp for $local_part@$domain"
  driver = smtp
.ifdef REMOTE_SMTP_HOSTS_AVOID_TLS
  hosts_avoid_tls = REMOTE_SMTP_HOSTS_AVOID_TLS
.endif

remote_smtp_smarthost:
  driver = smtp
"""


def make_tree(root: Path) -> None:
    files = {
        "etc/hostname": "buildhost\n", "etc/resolv.conf": "nameserver 192.0.2.53\n",
        "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
        "etc/ssh/ssh_host_ed25519_key": "secret", "etc/ssh/ssh_host_ed25519_key.pub": "public",
        "etc/ssh/sshd_config": "# kept\n",
        "etc/rsyslog.conf": 'module(load="imuxsock")\nmodule(load="imklog")   # kernel logging\n',
        "etc/inetd.conf": "# nothing enabled\n",
        "etc/apt/sources.list": "deb http://build.example/debian bookworm main\n",
        "etc/apache2/mods-available/mpm_event.load": "", "etc/apache2/mods-available/mpm_event.conf": "",
        "etc/apache2/mods-available/mpm_prefork.load": "",
        "etc/apache2/mods-available/mpm_prefork.conf": "StartServers 5\n",
        "etc/apache2/mods-available/status.load": "", "etc/apache2/mods-available/dir.load": "",
        "etc/exim4/exim4.conf.template": EXIM_TEMPLATE,
        "etc/exim4/update-exim4.conf.conf": "dc_eximconfig_configtype='local'\n"
                                            "dc_other_hostnames='buildhost'\n"
                                            "dc_local_interfaces='127.0.0.1 ; ::1'\n",
        "etc/mailname": "buildhost\n",
        "var/cache/apt/archives/bash_5.2_amd64.deb": "deb",
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages": "x",
        "var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n",
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "etc/apache2/mods-enabled").mkdir(parents=True)
    for name in ("mpm_event.load", "mpm_event.conf", "status.load", "dir.load"):
        (root / "etc/apache2/mods-enabled" / name).symlink_to(f"../mods-available/{name}")
    wants = root / "etc/systemd/system/getty.target.wants"
    wants.mkdir(parents=True)
    (wants / "getty@tty1.service").symlink_to("/lib/systemd/system/getty@.service")
    (root / "dev/pts").mkdir(parents=True)
    os.mkfifo(root / "dev/initctl")
    (root / "dev/fd").symlink_to("/proc/self/fd")


@pytest.fixture
def web_tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    make_tree(root)
    request = Request(name="debian-12-x86_64-web", distribution=names.parse_distribution("debian-12"),
                      arch="amd64", flavour="web", init="systemd",
                      mirrors=Mirrors("http://mirror.example/debian", "http://mirror.example/security"))
    prepare(root, request)
    return root


def test_what_each_ct_makes_its_own_is_removed(web_tree: Path) -> None:
    assert (web_tree / "etc/hostname").read_text() == ""
    assert (web_tree / "etc/resolv.conf").read_text() == ""
    assert (web_tree / "etc/machine-id").read_text() == ""
    assert os.readlink(web_tree / "var/lib/dbus/machine-id") == "/etc/machine-id"
    assert sorted(p.name for p in (web_tree / "etc/ssh").iterdir()) == ["sshd_config"]
    dropin = web_tree / "etc/systemd/system/ssh.service.d/vzcore-host-keys.conf"
    assert "ExecStartPre=/usr/bin/ssh-keygen -A" in dropin.read_text()
    assert list((web_tree / "dev").iterdir()) == []
    assert list((web_tree / "etc/systemd/system/getty.target.wants").iterdir()) == []
    assert list((web_tree / "var/cache/apt/archives").iterdir()) == []
    assert list((web_tree / "var/lib/apt/lists").iterdir()) == []


def test_services_are_set_for_a_ct(web_tree: Path) -> None:
    rsyslog = (web_tree / "etc/rsyslog.conf").read_text().splitlines()
    assert rsyslog[0] == 'module(load="imuxsock")' and rsyslog[1].startswith('#module(load="imklog")')
    assert (web_tree / "etc/apt/sources.list").read_text().splitlines()[1:] == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/security bookworm-security main"]


def test_the_web_flavour_preforks_eight_apache_workers(web_tree: Path) -> None:
    enabled = web_tree / "etc/apache2/mods-enabled"
    assert sorted(p.name for p in enabled.iterdir()) == ["dir.load", "mpm_prefork.conf",
                                                          "mpm_prefork.load"]
    assert os.readlink(enabled / "mpm_prefork.load") == "../mods-available/mpm_prefork.load"
    conf = (web_tree / "etc/apache2/mods-available/mpm_prefork.conf").read_text().split()
    assert conf[conf.index("StartServers") + 1] == "8"
    assert conf[conf.index("MinSpareServers") + 1] == "8"
    assert "127.0.0.1:discard" in (web_tree / "etc/inetd.conf").read_text()


def test_the_web_flavours_exim_holds_no_ca_bundle(web_tree: Path) -> None:
    """The daemon preloads no CA bundle (12 MiB of its heap), the server side verifies no
    client, outgoing TLS still verifies against the bundle (an expansion, read per
    delivery), in both smtp transports; the conffile edit is made once."""
    macros = (web_tree / "etc/exim4/exim4.conf.localmacros").read_text().splitlines()
    assert "tls_verify_certificates =" in macros
    ca = "${if exists{/etc/ssl/certs/ca-certificates.crt}{/etc/ssl/certs/ca-certificates.crt}{system}}"
    assert f"REMOTE_SMTP_SMARTHOST_TLS_VERIFY_CERTIFICATES = {ca}" in macros
    template = (web_tree / "etc/exim4/exim4.conf.template").read_text()
    assert template.count("tls_verify_certificates") == 1
    assert (f'  debug_print = "T: remote_smtp for $local_part@$domain"\n  driver = smtp\n'
            f"  tls_verify_certificates = {ca}\n.ifdef REMOTE_SMTP_HOSTS_AVOID_TLS") in template


def test_the_web_flavours_exim_keeps_no_name_of_the_build_host(web_tree: Path) -> None:
    conf = (web_tree / "etc/exim4/update-exim4.conf.conf").read_text().splitlines()
    assert conf == ["dc_eximconfig_configtype='local'", "dc_other_hostnames=''",
                    "dc_local_interfaces='127.0.0.1 ; ::1'"]
    assert (web_tree / "etc/mailname").read_text() == "localhost\n"
