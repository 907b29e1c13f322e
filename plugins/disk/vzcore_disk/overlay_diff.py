"""A CT's tree as an overlayfs upper layer against its template's shared tree.

``vzctl convert --layout overlay`` keeps in the upper layer only what differs from the
lower one (the template's tree, owned ``0..65535`` unshifted): for each path of the CT's
tree, the lower one is kept where type, content (SHA-256 of regular files, link target,
device number), mode, owner after the CT's ID shift and extended attributes are the same,
and hard links are grouped alike; anything else is copied up (``cp -a``, which keeps
owner, mode, times, xattrs).  A directory of the tree with the same metadata as the lower
one gets an upper directory only when something below it changed (then with the tree's
metadata); a path of the lower tree the CT's tree lacks becomes an overlayfs *whiteout*
(a 0/0 character device) in its merged directory.  Modification times are not compared
(a template's busybox links are made anew per CT): a file equal in everything else keeps
the template's time, which the merged view then shows.

The upper layer is stored shifted, as a mounted overlay CT's is (copied-up files take the
owner the idmapped lower shows): the copies keep the tree's host owners.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from vzcore import areas
from vzcore.errors import VzError

CONVERT_ERROR = 3
Shift = Callable[[int, int], tuple[int, int]]
"""Maps a lower file's owner (the template's IDs) to the host IDs the CT's tree has."""


def digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def xattrs(path: str) -> dict[str, bytes]:
    """The extended attributes of ``path`` (not followed), overlayfs's own and the private
    area's marker (:mod:`vzcore.areas`: an area's, not a file's) excepted."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found = {}
    for name in names:
        if name.startswith("trusted.overlay.") or name == areas.MARKER:
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return found


class Differ:
    """Fill ``upper`` with how ``tree`` differs from ``lower``; ``skip``: top-level names of
    ``tree`` left out (an image's ``lost+found``)."""

    def __init__(self, tree: Path, lower: Path, upper: Path, shift: Shift,
                 skip: tuple[str, ...] = ()) -> None:
        self.tree, self.lower, self.upper, self.shift, self.skip = tree, lower, upper, shift, skip
        self.groups = self._link_groups()
        self.copied: dict[tuple[int, int], str] = {}  # a tree inode -> its first upper copy
        self.made: set[str] = set()  # relative directories made in the upper layer
        self.pending: list[str] = []  # upper directories to give the tree's times, deepest last

    def _link_groups(self) -> dict[tuple[int, int], list[str]]:
        """Regular files of the tree with more than one link: inode -> relative paths."""
        groups: dict[tuple[int, int], list[str]] = {}
        for top, _dirs, files in os.walk(self.tree):
            for name in files:
                path = os.path.join(top, name)
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    groups.setdefault((st.st_dev, st.st_ino), []).append(
                        os.path.relpath(path, self.tree))
        return groups

    def run(self) -> None:
        self._directory(".", merged=True)
        self._ensure_dir(".")  # the root always carries the tree's metadata
        for rel in reversed(self.pending):
            st = os.lstat(self._t(rel))
            os.utime(self._u(rel), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _t(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.tree, rel))

    def _l(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.lower, rel))

    def _u(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.upper, rel))

    def _same_meta(self, a: os.stat_result, b: os.stat_result, ta: str, lb: str) -> bool:
        return (stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode)
                and stat.S_IMODE(a.st_mode) == stat.S_IMODE(b.st_mode)
                and (a.st_uid, a.st_gid) == self.shift(b.st_uid, b.st_gid)
                and xattrs(ta) == xattrs(lb))

    def _directory(self, rel: str, merged: bool) -> None:
        """Walk the tree's directory ``rel``, whose lower counterpart is a directory."""
        names = sorted(os.listdir(self._t(rel)))
        if rel == ".":
            names = [n for n in names if n not in self.skip]
        for name in names:
            self._entry(os.path.join(rel, name) if rel != "." else name)
        if merged:
            present = set(names)
            for name in sorted(os.listdir(self._l(rel))):
                if name not in present:
                    self._whiteout(os.path.join(rel, name) if rel != "." else name)

    def _entry(self, rel: str) -> None:
        t, low = self._t(rel), self._l(rel)
        st = os.lstat(t)
        try:
            ls = os.lstat(low)
        except FileNotFoundError:
            ls = None
        if stat.S_ISDIR(st.st_mode):
            if ls is not None and stat.S_ISDIR(ls.st_mode):
                if not self._same_meta(st, ls, t, low):
                    self._ensure_dir(rel)
                self._directory(rel, merged=True)
            else:  # nothing of the lower tree below: the whole subtree is the CT's
                self._ensure_dir(os.path.dirname(rel))
                self._copy(rel)
            return
        if ls is not None and self._same_file(st, ls, t, low, rel):
            return
        self._ensure_dir(os.path.dirname(rel))
        self._copy(rel, st)

    def _same_file(self, st: os.stat_result, ls: os.stat_result, t: str, low: str,
                   rel: str) -> bool:
        if not self._same_meta(st, ls, t, low):
            return False
        if stat.S_ISREG(st.st_mode):
            if st.st_size != ls.st_size or digest(t) != digest(low):
                return False
            return self._same_links(st, ls, rel)
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(t) == os.readlink(low)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            return st.st_rdev == ls.st_rdev
        return True  # FIFOs, sockets: type, mode, owner, xattrs

    def _same_links(self, st: os.stat_result, ls: os.stat_result, rel: str) -> bool:
        """A file linked elsewhere in the tree stays below only if its whole link group is
        one lower inode with as many links (so the merged view links them alike)."""
        if st.st_nlink != ls.st_nlink:
            return False
        if st.st_nlink == 1:
            return True
        for other in self.groups.get((st.st_dev, st.st_ino), [rel]):
            try:
                o = os.lstat(self._l(other))
            except FileNotFoundError:
                return False
            if (o.st_dev, o.st_ino) != (ls.st_dev, ls.st_ino):
                return False
        return True

    def _ensure_dir(self, rel: str) -> None:
        """Make the upper directory ``rel`` (and its parents) with the tree's metadata."""
        rel = os.path.normpath(rel)
        if rel in self.made:
            return
        if rel != ".":
            self._ensure_dir(os.path.dirname(rel) or ".")
        target, source = self._u(rel), self._t(rel)
        st = os.lstat(source)
        if rel != ".":
            os.mkdir(target, 0o700)
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, stat.S_IMODE(st.st_mode))
        for name, value in xattrs(source).items():
            os.setxattr(target, name, value)
        self.made.add(rel)
        self.pending.append(rel)

    def _copy(self, rel: str, st: os.stat_result | None = None) -> None:
        """Copy the tree's ``rel`` (a whole subtree for a directory) up; a hard link of a
        file already copied up is linked to that copy."""
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            first = self.copied.get((st.st_dev, st.st_ino))
            if first is not None:
                os.link(first, self._u(rel))
                return
            self.copied[(st.st_dev, st.st_ino)] = self._u(rel)
        done = subprocess.run(["cp", "-a", "--no-target-directory", self._t(rel), self._u(rel)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise VzError(f"cannot copy {rel} into the upper layer: {done.stderr.strip()}",
                          exit_code=CONVERT_ERROR)

    def _whiteout(self, rel: str) -> None:
        """Hide the lower tree's ``rel``: overlayfs's whiteout, a 0/0 character device."""
        self._ensure_dir(os.path.dirname(rel) or ".")
        os.mknod(self._u(rel), stat.S_IFCHR | 0o000, os.makedev(0, 0))
