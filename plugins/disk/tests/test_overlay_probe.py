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
