"""``safefs.read_file`` reads a CT's file whole or refuses it; ``write_file`` never leaves
a cut file behind (issue 19: /etc/hosts beyond 1 MiB lost its tail)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.errors import KernelError
from vzcore.linux import safefs


@pytest.fixture
def root(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "etc").mkdir()
    fd = safefs.open_root(tmp_path)
    yield fd
    os.close(fd)


def test_read_is_whole_beyond_one_mib(tmp_path: Path, root: int) -> None:
    data = os.urandom(3 << 20) + b"the tail\n"
    (tmp_path / "etc/hosts").write_bytes(data)
    assert safefs.read_file(root, "etc/hosts") == data


def test_read_past_the_limit_is_refused_not_cut(tmp_path: Path, root: int) -> None:
    (tmp_path / "etc/hosts").write_bytes(b"x" * 4097)
    with pytest.raises(KernelError) as info:
        safefs.read_file(root, "etc/hosts", limit=4096)
    assert info.value.errno == errno.EFBIG
    assert safefs.read_file(root, "etc/hosts", limit=4097) == b"x" * 4097


def test_read_resolves_a_planted_link_inside_the_root(tmp_path: Path, root: int) -> None:
    (tmp_path / "inside").write_text("the CT's own\n")
    (tmp_path / "etc/hosts").symlink_to("/inside")
    assert safefs.read_file(root, "etc/hosts") == b"the CT's own\n"
    (tmp_path / "etc/resolv.conf").symlink_to("/../../../../../../../../etc/passwd")
    with pytest.raises(KernelError):
        safefs.read_file(root, "etc/resolv.conf")  # /etc/passwd of the root: there is none


def test_write_replaces_a_link_and_writes_everything(tmp_path: Path, root: int) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_text("host file\n")
    (tmp_path / "etc/hosts").symlink_to(outside)
    data = b"y" * (5 << 20)
    safefs.write_file(root, "etc/hosts", data)
    assert outside.read_text() == "host file\n"
    assert not (tmp_path / "etc/hosts").is_symlink()
    assert (tmp_path / "etc/hosts").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["hosts"], "no temporary left"
    outside.unlink()
