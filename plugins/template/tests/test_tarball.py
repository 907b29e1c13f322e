"""Cached templates unpack safely: no member escapes the private area; owners and modes stay."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from vzcore.errors import BadTemplate, TemplateNotFound
from vzcore_template import tarball

pytestmark = pytest.mark.root  # chown to arbitrary owners and mknod need root


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x", mode: int = 0o644,
             uid: int = 0, gid: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, 1_000_000
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "",
                mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


def make(path: Path, build) -> Path:  # type: ignore[no-untyped-def]
    with tarfile.open(path, "w:gz") as tar:
        build(tar)
    return path


@pytest.mark.vm  # mknod and chown on the stock kernel's tmpfs
def test_owners_modes_links_and_devices_are_kept(tmp_path: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_special(tar, "./etc", tarfile.DIRTYPE, mode=0o750)
        add_file(tar, "./etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        add_file(tar, "./usr/bin/sudo", b"\x7fELF", 0o4755)
        add_file(tar, "./home/user/file", b"mine", 0o600, uid=1000, gid=1000)
        add_special(tar, "./bin/sh", tarfile.SYMTYPE, "/bin/busybox")
        add_special(tar, "./etc/passwd.hard", tarfile.LNKTYPE, "./etc/passwd")
        add_special(tar, "./dev/null", tarfile.CHRTYPE, mode=0o666)

    private = tmp_path / "private"
    private.mkdir()
    tarball.unpack(make(tmp_path / "t.tar.gz", build), private)
    assert (private / "etc/passwd").read_text().startswith("root:")
    assert stat.S_IMODE((private / "etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((private / "usr/bin/sudo").stat().st_mode) == 0o4755
    home = (private / "home/user/file").stat()
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o600)
    assert os.readlink(private / "bin/sh") == "/bin/busybox"
    assert (private / "etc/passwd.hard").stat().st_ino == (private / "etc/passwd").stat().st_ino
    assert stat.S_ISCHR((private / "dev/null").lstat().st_mode)
    assert (private / "etc/passwd").stat().st_mtime == 1_000_000


@pytest.mark.parametrize("link", ["ABSOLUTE", "../../outside", "../../../../../../../outside"])
def test_writing_through_a_link_never_leaves_the_private_area(tmp_path: Path, link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    target = str(outside) if link == "ABSOLUTE" else link

    def build(tar: tarfile.TarFile) -> None:
        add_special(tar, "etc", tarfile.SYMTYPE, target)
        add_file(tar, "etc/victim", b"pwned")

    private = tmp_path / "private"
    private.mkdir()
    try:
        tarball.unpack(make(tmp_path / "evil.tar.gz", build), private)
    except BadTemplate:
        pass  # the link's target does not exist inside the private area: refused
    assert (outside / "victim").read_text() == "untouched"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


def test_links_are_followed_inside_the_private_area(tmp_path: Path) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_special(tar, "usr/lib", tarfile.DIRTYPE)
        add_special(tar, "lib", tarfile.SYMTYPE, "/usr/lib")
        add_file(tar, "lib/libc.so", b"elf")
        add_file(tar, "/abs/file", b"stays inside")  # a leading / is stripped, as GNU tar does

    private = tmp_path / "private"
    private.mkdir()
    tarball.unpack(make(tmp_path / "merged.tar.gz", build), private)
    assert (private / "usr/lib/libc.so").read_bytes() == b"elf"
    assert (private / "abs/file").read_text() == "stays inside"


@pytest.mark.parametrize("member", ["../escape", "a/../../escape"])
def test_dot_dot_members_are_refused(tmp_path: Path, member: str) -> None:
    private = tmp_path / "private"
    private.mkdir()
    archive = make(tmp_path / "dots.tar.gz", lambda tar: add_file(tar, member))
    with pytest.raises(BadTemplate, match="outside the private area"):
        tarball.unpack(archive, private)
    assert not (tmp_path / "escape").exists()


def test_hard_link_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host secret")
    private = tmp_path / "private"
    private.mkdir()
    archive = make(tmp_path / "hard.tar.gz",
                   lambda tar: add_special(tar, "stolen", tarfile.LNKTYPE, "../secret"))
    with pytest.raises(BadTemplate):
        tarball.unpack(archive, private)
    assert not (private / "stolen").exists()


def test_compressions(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "etc").mkdir(parents=True)
    (source / "etc/hostname").write_text("t\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["tar", "-C", str(source), "-cJf", str(cache / "xz-os.tar.xz"), "."], check=True)
    subprocess.run(["tar", "-C", str(source), "--zstd", "-cf", str(cache / "zst-os.tar.zst"), "."],
                   check=True)
    for name in ("xz-os", "zst-os"):
        private = tmp_path / name
        private.mkdir()
        tarball.unpack(tarball.find(cache, name), private)
        assert (private / "etc/hostname").read_text() == "t\n"
    with pytest.raises(TemplateNotFound, match="'missing'"):
        tarball.find(cache, "missing")
