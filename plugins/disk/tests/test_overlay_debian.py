"""The overlay layout with a real distribution: an unprivileged Debian 12 CT on the shared,
unshifted tree sees every owner as its own (root, system users, set-id bits)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from test_overlay import local_uid, trees, upper

from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore.testing.templates import DebianTemplate

pytestmark = [pytest.mark.root]


def test_debian_ct_owners_through_the_idmapped_tree(
        vz_env: VzEnv, vzctl: Vzctl, debian_template: Callable[[str], DebianTemplate]) -> None:
    template = debian_template("sysvinit")
    template.install(vz_env)
    vzctl("create", 101, "--ostemplate", template.name, "--layout", "overlay",
          "--diskspace", "1G")
    [tree] = trees(vz_env)
    assert os.stat(tree / "usr/bin/passwd").st_uid == 0  # unshifted on disk
    shadow_gid = os.stat(tree / "etc/shadow").st_gid
    vzctl("start", 101)
    try:
        out = vzctl("exec", 101, "stat -c %u:%g:%a /usr/bin/passwd; "
                                 "stat -c %U:%G /etc/shadow; "
                                 "su -s /bin/sh nobody -c 'touch /tmp/by-nobody'").stdout
        assert out.splitlines() == ["0:0:4755", "root:shadow"], out
        base = local_uid(vz_env, 101)
        assert os.stat(upper(vz_env, 101) / "tmp/by-nobody").st_uid == base + 65534
        assert 0 < shadow_gid < 65536  # group shadow: a system group's ID, shifted by the idmap
    finally:
        vzctl("stop", "--fast", 101)
    vzctl("destroy", 101)
