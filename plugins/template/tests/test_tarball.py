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
from vzcore.idmap import IdMap
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
def test_owners_modes_and_links_are_kept(tmp_path: Path) -> None:
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
    skipped = tarball.unpack(make(tmp_path / "t.tar.gz", build), private)
    assert (private / "etc/passwd").read_text().startswith("root:")
    assert stat.S_IMODE((private / "etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((private / "usr/bin/sudo").stat().st_mode) == 0o4755
    home = (private / "home/user/file").stat()
    assert (home.st_uid, home.st_gid, stat.S_IMODE(home.st_mode)) == (1000, 1000, 0o600)
    assert os.readlink(private / "bin/sh") == "/bin/busybox"
    assert (private / "etc/passwd.hard").stat().st_ino == (private / "etc/passwd").stat().st_ino
    assert skipped == ["./dev/null"] and not (private / "dev/null").exists()
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


def test_device_nodes_are_left_out(tmp_path: Path) -> None:
    """A template's /dev/sda (or any node) never lands in the private area: a CT's /dev is
    a tmpfs made at start, and a node there would open the host's device."""
    def build(tar: tarfile.TarFile) -> None:
        add_special(tar, "./dev/mem", tarfile.CHRTYPE, mode=0o666)
        info = tarfile.TarInfo("./sda")
        info.type, info.mode, info.devmajor, info.devminor = tarfile.BLKTYPE, 0o666, 8, 0
        tar.addfile(info)
        add_file(tar, "./etc/hostname", b"ok\n")

    private = tmp_path / "private"
    private.mkdir()
    skipped = tarball.unpack(make(tmp_path / "dev.tar.gz", build), private)
    assert skipped == ["./dev/mem", "./sda"]
    assert (private / "etc/hostname").read_text() == "ok\n"
    modes = [p.lstat().st_mode for p in private.rglob("*")]
    assert not [m for m in modes if stat.S_ISCHR(m) or stat.S_ISBLK(m)]


def test_setuid_root_belongs_to_the_cts_root_in_a_user_namespace(tmp_path: Path) -> None:
    """A setuid-root program of the template is the CT's root's (host UID LOCAL_UID) in
    an unprivileged CT, never the host's root; set-id bits survive the chown."""
    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "./usr/bin/su", b"\x7fELF", 0o4755)
        add_file(tar, "./usr/bin/wall", b"\x7fELF", 0o2755, gid=5)

    private = tmp_path / "private"
    private.mkdir()
    tarball.unpack(make(tmp_path / "suid.tar.gz", build), private, idmap=IdMap(200000, 300000))
    su, wall = (private / "usr/bin/su").stat(), (private / "usr/bin/wall").stat()
    assert (su.st_uid, su.st_gid, stat.S_IMODE(su.st_mode)) == (200000, 300000, 0o4755)
    assert (wall.st_uid, wall.st_gid, stat.S_IMODE(wall.st_mode)) == (200000, 300005, 0o2755)
    assert not [p for p in private.rglob("*") if p.lstat().st_uid == 0]


def test_owner_outside_the_cts_range_is_refused(tmp_path: Path) -> None:
    """An owner the CT cannot have (UID 70000 with 65536 IDs) would map onto the next
    CT's range: refused, naming the member."""
    private = tmp_path / "private"
    private.mkdir()
    archive = make(tmp_path / "uid.tar.gz",
                   lambda tar: add_file(tar, "./usr/bin/x", b"x", 0o4755, uid=70000))
    with pytest.raises(BadTemplate, match=r"usr/bin/x.*outside"):
        tarball.unpack(archive, private, idmap=IdMap(200000, 200000))


@pytest.mark.parametrize("target", ["/etc/shadow", "//etc/../etc/shadow"])
def test_absolute_hard_link_is_taken_inside(tmp_path: Path, target: str) -> None:
    """A hard link to ``/etc/shadow`` means the template's own, never the host's: linked to
    the private area's copy when the archive has one, refused otherwise."""
    host_links = os.stat("/etc/shadow").st_nlink

    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "./etc/shadow", b"root:*:1::::::\n", 0o640)
        add_special(tar, "./stolen", tarfile.LNKTYPE, target)

    private = tmp_path / "private"
    private.mkdir()
    if ".." in target:
        with pytest.raises(BadTemplate, match="outside the private area"):
            tarball.unpack(make(tmp_path / "hard.tar.gz", build), private)
    else:
        tarball.unpack(make(tmp_path / "hard.tar.gz", build), private)
        assert (private / "stolen").stat().st_ino == (private / "etc/shadow").stat().st_ino
    missing = tmp_path / "private2"
    missing.mkdir()
    archive = make(tmp_path / "hard2.tar.gz",
                   lambda tar: add_special(tar, "./stolen", tarfile.LNKTYPE, "/etc/shadow"))
    with pytest.raises(BadTemplate):
        tarball.unpack(archive, missing)
    assert os.stat("/etc/shadow").st_nlink == host_links
    assert not (missing / "stolen").exists()
