"""Cached OS templates: ``$TEMPLATE/cache/NAME.tar[.gz|.xz|.zst|.bz2]`` unpacked safely.

Every member is created through :mod:`vzcore.linux.safefs` inside the private area, so
no member can escape it: leading ``/`` is stripped (as GNU tar does), ``..`` is refused,
links in the archive are never followed while unpacking (a symlink ``etc -> /etc`` then a
file ``etc/passwd`` lands in the CT's /etc, not the host's), and hard links must point
inside.  Owners (numeric), modes and times are preserved, as a root tar would.

Device nodes are neutralised: skipped, and named in a warning.  A CT's ``/dev`` is a tmpfs
vzctl fills at start; a node left in the private area would be a device file reachable
from the host's tree (and, owned by the CT's root, openable by it).  Set-id files keep
their bits with their owner shifted like every other (an unprivileged CT's setuid-root
program belongs to the CT's root, never the host's); an owner outside the CT's ID range
is refused.  For a privileged CT (``LOCAL_UID=0``) they stay the host root's, as on
OpenVZ; the private areas' directory is made ``0700`` (plugin.vz_create) so no host user
can run them from there.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from vzcore.errors import BadTemplate, KernelError, TemplateNotFound, describe
from vzcore.idmap import IdMap
from vzcore.linux import safefs

SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.zst", ".tar.bz2")
CHUNK = 1 << 20


def find(cache_dir: Path, name: str) -> Path:
    """The cached tarball of template ``name`` (first suffix found, in OpenVZ's order)."""
    for suffix in SUFFIXES:
        candidate = cache_dir / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise TemplateNotFound(
        f"OS template '{name}' not found: no {name}{{{','.join(SUFFIXES)}}} in {cache_dir}; "
        "use --ostemplate busybox or put a tarball there")


def _member_path(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadTemplate(f"template member {name!r} points outside the private area")
    return "/".join(parts)


def _open_stream(path: Path) -> tuple[IO[bytes], subprocess.Popen[bytes] | None, IO[bytes]]:
    """A raw stream of the uncompressed archive (zstd through the zstd tool), its
    decompressor if any, and the file itself (whose offset tells how far it was read)."""
    source = open(path, "rb")  # noqa: SIM115 - closed by unpack
    if not path.name.endswith(".zst"):
        return source, None, source
    # zstd reads the file vzctl opened (zstd itself refuses a link to the cache); it
    # shares the file's offset, which shows the progress
    try:
        proc = subprocess.Popen(["zstd", "-dc"], stdin=source, stdout=subprocess.PIPE)
    except FileNotFoundError:
        source.close()
        raise BadTemplate(f"{path.name} needs the zstd tool: apt-get install zstd") from None
    assert proc.stdout is not None
    return proc.stdout, proc, source


def unpack(path: Path, private: Path, progress: Callable[[int, int], None] | None = None,
           idmap: IdMap | None = None) -> list[str]:
    """Unpack ``path`` into the (empty) directory ``private``; with ``idmap`` (a CT in a
    user namespace) owners are shifted into the CT's host ID range.  Returns the members
    left out (device nodes, sockets)."""
    skipped: list[str] = []
    owner = _Owners(idmap)
    total = path.stat().st_size
    stream, proc, source = _open_stream(path)
    root_fd = safefs.open_root(private)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            directories: list[tuple[str, tarfile.TarInfo]] = []
            for member in archive:
                relative = _member_path(member.name)
                if not relative:
                    continue
                if member.ischr() or member.isblk() or not (
                        member.isdir() or member.isfile() or member.issym() or member.islnk()
                        or member.isfifo()):
                    skipped.append(member.name)
                    continue
                try:
                    _extract(archive, member, relative, root_fd, owner)
                except (KernelError, OSError, ValueError) as exc:
                    raise BadTemplate(f"template {path.name}: cannot unpack {member.name!r}: "
                                      f"{describe(exc)}") from exc
                if member.isdir():
                    directories.append((relative, member))
                if progress is not None:
                    progress(os.lseek(source.fileno(), 0, os.SEEK_CUR), total)
            for relative, member in reversed(directories):  # modes and times after contents
                _set_attributes(root_fd, relative, member, owner)
    except tarfile.TarError as exc:
        raise BadTemplate(f"template {path.name} is not a readable tar archive: {exc}") from exc
    finally:
        os.close(root_fd)
        stream.close()
        source.close()
        # zstd killed by the closed pipe after an error above: that error is the one to tell
        failed = proc is not None and proc.wait() != 0
    if failed:
        raise BadTemplate(f"zstd failed to decompress {path.name}")
    return skipped


def _parent_fd(root_fd: int, relative: str, owner: _Owners | None = None) -> tuple[int, str]:
    """The directory of ``relative`` (opened) and its last name; with ``owner``, missing
    directories are made, owned by the CT's root (a member ``usr/bin/su`` without ``usr/``
    before it must not leave a host-root ``/usr`` in an unprivileged CT)."""
    directory, _, name = relative.rpartition("/")
    if directory and owner is not None:
        safefs.makedirs(root_fd, directory, owner=owner.root)
    return safefs.open_in(root_fd, directory or ".", os.O_PATH | os.O_DIRECTORY), name


def _remove_existing(dir_fd: int, name: str, keep_dir: bool) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not keep_dir:
            raise BadTemplate(f"template replaces directory {name!r} with a non-directory")
        return
    os.unlink(name, dir_fd=dir_fd)


class _Owners:
    """Maps an archive's owners to host IDs (identity for a privileged CT)."""

    def __init__(self, idmap: IdMap | None) -> None:
        self.idmap = idmap

    @property
    def root(self) -> tuple[int, int]:
        """Host owner of the CT's root (of directories the archive does not list)."""
        return (0, 0) if self.idmap is None else self.idmap.root

    def of(self, member: tarfile.TarInfo) -> tuple[int, int]:
        if self.idmap is None:
            return member.uid, member.gid
        return self.idmap.host_uid(member.uid), self.idmap.host_gid(member.gid)


def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo, relative: str, root_fd: int,
             owner: _Owners) -> None:
    dir_fd, name = _parent_fd(root_fd, relative, owner)
    try:
        _remove_existing(dir_fd, name, keep_dir=member.isdir())
        if member.isdir():
            try:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            except FileExistsError:
                pass
            return
        if member.isfile():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dir_fd)
            with os.fdopen(fd, "wb") as out:
                source = archive.extractfile(member)
                assert source is not None
                while chunk := source.read(CHUNK):
                    out.write(chunk)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=dir_fd)
        elif member.islnk():
            target = _member_path(member.linkname)
            target_fd, target_name = _parent_fd(root_fd, target)
            try:
                os.link(target_name, name, src_dir_fd=target_fd, dst_dir_fd=dir_fd,
                        follow_symlinks=False)
            finally:
                os.close(target_fd)
        elif member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=dir_fd)
        else:
            return
    finally:
        os.close(dir_fd)
    if not member.isdir() and not member.islnk():  # a hard link shares its target's inode
        _set_attributes(root_fd, relative, member, owner)


def _set_attributes(root_fd: int, relative: str, member: tarfile.TarInfo, owner: _Owners) -> None:
    """Owner, then mode (chown clears set-id bits), then times; links keep their own."""
    dir_fd, name = _parent_fd(root_fd, relative)
    try:
        os.chown(name, *owner.of(member), dir_fd=dir_fd, follow_symlinks=False)
        if not member.issym():
            _chmod_nofollow(dir_fd, name, member.mode & 0o7777)
        os.utime(name, (member.mtime, member.mtime), dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(dir_fd)


def _chmod_nofollow(dir_fd: int, name: str, mode: int) -> None:
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)
