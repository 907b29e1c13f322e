"""vzcore.linux.devnodes.make_node on the real kernel: a node appears under its name only
whole (owner and mode set), replacing what was there, and leaves no temporary name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vzcore.errors import KernelError
from vzcore.linux.devnodes import DEV_NODES, RESERVED_NAMES, STANDARD, make_node

pytestmark = [pytest.mark.root]

NULL = os.makedev(*DEV_NODES["null"])


def make(directory: Path, name: str, mode: int = 0o640) -> None:
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        make_node(fd, name, stat.S_IFCHR, NULL, mode, (1234, 5678))
    finally:
        os.close(fd)


def test_a_node_replaces_what_was_there_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file")
    os.chmod(victim, 0o600)
    (tmp_path / "link").symlink_to(victim)      # what a CT could plant under the name
    (tmp_path / "file").write_text("x")
    for name in ("fresh", "link", "file"):
        make(tmp_path, name)
        st = os.lstat(tmp_path / name)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == NULL
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
    # the link was replaced, never followed: its target kept its owner and mode
    vst = victim.stat()
    assert (vst.st_uid, stat.S_IMODE(vst.st_mode)) == (0, 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "fresh", "link", "victim"]


def test_a_directory_under_the_name_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(KernelError) as caught:
        make(tmp_path, "dir")
    assert caught.value.errno in (21, 39)  # EISDIR (ENOTEMPTY for a full one)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_one_table_for_the_nodes_the_allow_list_and_the_reserved_names() -> None:
    assert DEV_NODES == {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                         "urandom": (1, 9), "tty": (5, 0)}
    assert {d.name for d in STANDARD} <= RESERVED_NAMES
    from vzcore_devices import grammar, policy

    assert grammar.RESERVED == RESERVED_NAMES
    allowed = {(r.major, r.minor) for r in policy.DEFAULT if r.kind == "c" and r.major}
    assert allowed == {(d.major, d.minor) for d in STANDARD}
