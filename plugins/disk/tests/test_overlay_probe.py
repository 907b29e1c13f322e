"""The probe that refuses ``--layout overlay`` where the kernel cannot mount it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vzcore.idmap import IdMap
from vzcore.linux import idmapped

pytestmark = [pytest.mark.root]


def test_an_idmappable_tree_passes(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    assert idmapped.probe_overlay(tmp_path / "tree", IdMap(200000, 200000)) is None
    assert idmapped.probe_overlay(tmp_path / "tree", None) is None


def test_a_file_system_without_idmap_support_is_named() -> None:
    # procfs has no FS_ALLOW_IDMAP: mount_setattr refuses, the reason says so
    reason = idmapped.probe_overlay(Path("/proc/sys"), IdMap(200000, 200000))
    assert reason is not None and "cannot be idmapped" in reason, reason
    assert "MOUNT_ATTR_IDMAP" in reason


def test_an_idmapped_mount_shows_owners_shifted_and_leaves_no_helper(tmp_path: Path) -> None:
    import os

    from vzcore.linux import mounts

    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/f").write_text("x")
    os.chown(tmp_path / "tree/f", 0, 0)
    (tmp_path / "seen").mkdir()
    before = children()
    idmapped.mount_idmapped(tmp_path / "tree", tmp_path / "seen", IdMap(300000, 310000))
    try:
        st = os.stat(tmp_path / "seen/f")
        assert (st.st_uid, st.st_gid) == (300000, 310000)
        assert os.stat(tmp_path / "tree/f").st_uid == 0  # the tree itself is untouched
    finally:
        mounts.umount(tmp_path / "seen")
    assert children() == before  # the namespace's helper was reaped


def children() -> set[int]:
    """This process's children, zombies included (other tests' may exist: a session's
    containerd, for one)."""
    import os

    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            found.add(int(entry.name))
    return found
