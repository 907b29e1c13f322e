"""The overlay layout on the real kernel: one shared template tree below every CT, each
CT's changes in an image above it, idmapped for unprivileged CTs (issue 15's acceptance)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing import crash
from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_disk.image import image_of

from test_image import df_k, loops_of, sh, written_mb

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

OVERLAY = ("--ostemplate", "busybox", "--layout", "overlay", "--diskspace", "48M")


def trees(vz_env: VzEnv) -> list[Path]:
    """The shared trees the test's installation has."""
    return sorted((vz_env.root / "vz/template/shared").glob("*@*"))


def local_uid(vz_env: VzEnv, ctid: int) -> int:
    for line in vz_env.conf(ctid).read_text().splitlines():
        if line.startswith("LOCAL_UID="):
            return int(line.partition("=")[2].strip('"'))
    raise AssertionError("no LOCAL_UID")


def upper(vz_env: VzEnv, ctid: int) -> Path:
    """The CT's changes on the host (while it is mounted)."""
    return vz_env.private(ctid) / "mnt/root"


def du_k(path: Path) -> int:
    """Host disk use below ``path`` in 1K blocks, hard links once, as ``du -sx``."""
    seen, total = set(), 0
    for top, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(top, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks // 2
    return total


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_overlay_shares_the_template_tree(vz_env: VzEnv, vzctl: Vzctl, profile: str) -> None:
    ctids = (101, 102, 103) if profile == "userns" else (101,)
    options = profile_options(vz_env, profile)
    for ctid in ctids:
        vzctl("create", ctid, *OVERLAY, *options)
    [tree] = trees(vz_env)  # unpacked once, unshifted
    assert os.stat(tree / "bin/busybox").st_uid == 0
    tree_k = du_k(tree)
    for ctid in ctids:
        vzctl("start", ctid)
        # each CT sees the shared files owned by its own root
        assert sh(vzctl, ctid, "stat -c %u:%g /bin/busybox") == "0:0\n"
        sh(vzctl, ctid, "echo changed >> /etc/passwd; mkdir /home/u; touch /new")
        owner = local_uid(vz_env, ctid)
        # its changes are stored shifted in its upper layer, owned by its root on the host
        assert os.stat(upper(vz_env, ctid) / "new").st_uid == owner
        assert os.stat(upper(vz_env, ctid) / "etc/passwd").st_uid == owner
        assert "changed" not in (tree / "etc/passwd").read_text()  # the shared tree is untouched
        # the private area holds only the changes: no copy of the template's files
        assert not (upper(vz_env, ctid) / "bin/busybox").exists()
        assert du_k(upper(vz_env, ctid)) < 200 < tree_k, (du_k(upper(vz_env, ctid)), tree_k)
        # df / shows the upper layer's size
        size, _used = df_k(vzctl, ctid)
        assert 44 * 1024 < size <= 48 * 1024, f"df shows {size}K for 48M"
    # diskspace holds on the upper layer
    assert 40 <= written_mb(vzctl, ctids[0], "/big", 80) <= 48
    sh(vzctl, ctids[0], "rm /big")
    # changes survive stop and start; nothing is left mounted in between
    vzctl("stop", ctids[0])
    assert not mounts.mounts_below(vz_env.private(ctids[0]))
    assert not [loop for loop in loops_of(vz_env) if f"/{ctids[0]}/" in loop]
    vzctl("start", ctids[0])
    assert sh(vzctl, ctids[0], "tail -n 1 /etc/passwd; ls -d /new") == "changed\n/new\n"
    for ctid in ctids:
        vzctl("stop", ctid)
        vzctl("destroy", ctid)
    assert not loops_of(vz_env)
    assert not mounts.mounts_below(vz_env.root)
    assert trees(vz_env) == [tree]  # the current template's tree stays for the next create
