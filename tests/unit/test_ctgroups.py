"""CT group names: unchanged at ``/``, unique to each relocated installation."""

from __future__ import annotations

from pathlib import Path

from vzcore.ctgroups import group_name
from vzcore.paths import Paths


def test_the_installation_at_root_keeps_plain_ctid_names() -> None:
    assert group_name(Paths("/"), 101) == "101"


def test_two_prefixes_never_share_a_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    name_a, name_b = group_name(Paths(a), 101), group_name(Paths(b), 101)
    assert name_a != name_b
    assert name_a.startswith("101-") and len(name_a) == len("101-") + 8


def test_one_prefix_through_a_link_is_one_installation(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert group_name(Paths(tmp_path / "link"), 7) == group_name(Paths(tmp_path / "real"), 7)
