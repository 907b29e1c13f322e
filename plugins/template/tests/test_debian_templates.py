"""The Debian templates contrib/test.sh builds with ``vzctl template create`` (the
``debian_template`` fixture): their metadata, their contents prepared for CT use, and a
CT created from each (unpacked, owners shifted into the CT's ID range)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore.testing.templates import DebianTemplate

INITS = ("systemd", "sysvinit")


@pytest.mark.parametrize("init", INITS)
def test_metadata_beside_the_cache(debian_template: Callable[[str], DebianTemplate], init: str) -> None:
    template = debian_template(init)
    meta = json.loads(template.metadata.read_text())
    assert meta["name"] == template.name
    assert (meta["distribution"], meta["version"], meta["suite"]) == ("debian", "12", "bookworm")
    assert meta["architecture"] == "x86_64" and meta["flavour"] == "minimal" and meta["init"] == init
    assert meta["size"] == template.tarball.stat().st_size
    assert {"cron", "rsyslog", "openssh-server"} <= set(meta["packages"])
    assert ("systemd-sysv" in meta["packages"]) == (init == "systemd")
    assert meta["mirror"].startswith(("http://", "https://", "file://"))
    assert meta["created"].endswith("Z") and meta["recipe"]


def _members(tarball: Path) -> dict[str, str]:
    """name → ``tar -tv`` line of every member."""
    listing = subprocess.run(f"zstd -dc '{tarball}' | tar -tvf -", shell=True, check=True,
                             capture_output=True, text=True).stdout
    members = {}
    for line in listing.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0]
        members[name.removeprefix("./").rstrip("/")] = line
    return members


@pytest.mark.parametrize("init", INITS)
def test_the_cache_is_prepared_for_ct_use(debian_template: Callable[[str], DebianTemplate],
                                          init: str) -> None:
    members = _members(debian_template(init).tarball)
    assert not [n for n in members if n.startswith("etc/ssh/ssh_host_")], "host keys in the cache"
    assert not [n for n in members if n.startswith("dev/")], "device nodes or files in /dev"
    assert not [line for line in members.values() if line[0] in "cbps"], "special files"
    for empty in ("etc/machine-id", "etc/resolv.conf"):
        assert members[empty].split()[2] == "0", f"{empty} is not empty"
    if init == "systemd":
        assert members["etc/hostname"].split()[2] == "0"
    else:  # Debian's hostname.sh fails on an empty one
        assert "etc/hostname" not in members
    assert "usr/sbin/init" in members
    if init == "systemd":
        assert "etc/systemd/system/getty.target.wants/getty@tty1.service" not in members
        assert "etc/systemd/system/ssh.service.d/vzcore-host-keys.conf" in members
    else:
        assert "etc/init.d/vzcore-firstboot" in members
        assert [n for n in members if n.startswith("etc/rcS.d/") and n.endswith("vzcore-firstboot")]
        assert not [n for n in members if "systemd-sysv" in n and n.startswith("usr/share/doc")]
        assert members["usr/sbin/init"][0] == "-" and "usr/lib/systemd/systemd" not in members


@pytest.mark.root
@pytest.mark.parametrize("init", INITS)
def test_create_from_the_cache(debian_template: Callable[[str], DebianTemplate], init: str,
                               vz_env: VzEnv, vzctl: Vzctl) -> None:
    """``vzctl create --ostemplate debian-12-x86_64-minimal`` unpacks the zstd cache into
    the private area, owners shifted into the CT's ID range (the default profile)."""
    template = debian_template(init)
    template.install(vz_env)
    vzctl("create", 201, "--ostemplate", template.name, timeout=300)
    private = vz_env.private(201)
    conf = vz_env.conf(201).read_text()
    assert f'OSTEMPLATE="{template.name}"' in conf
    local_uid = private.stat().st_uid
    init_path = private / ("usr/lib/systemd/systemd" if init == "systemd" else "usr/sbin/init")
    st = init_path.stat()
    assert stat.S_ISREG(st.st_mode) and st.st_uid == (private / "etc").stat().st_uid
    # setuid-root programs belong to the CT's root, never to the host's
    su = (private / "usr/bin/su").stat()
    assert su.st_mode & stat.S_ISUID and (su.st_uid != 0 or local_uid == 0)
    assert os.readlink(private / "sbin") == "usr/sbin"
    assert (private / "etc/machine-id").read_text() == ""
    vzctl("destroy", 201)
    assert not private.exists()
