"""What a directory tree holds, to show that a refused command changed nothing in it."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path


def tree_digest(top: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``top`` (links not followed): type, mode, owner, and the content's
    hash (files) or target (links); mount points below ``top`` are listed, not entered.
    Times are left out (reading a file changes atime), and
    so are sockets: a CT's helper daemons (the beancounters view) make theirs when ready."""
    entries: dict[str, tuple[object, ...]] = {}
    for directory, dirnames, filenames in os.walk(top):
        # Mounts below the prefix are not descended into: a running CT's root (its files
        # are read in its private area) and the file systems of vzcore's shared services
        # (lxcfs's, whose /proc files answer only a CT's processes).
        dirnames[:] = [name for name in dirnames if not os.path.ismount(os.path.join(directory, name))]
        for name in [*dirnames, *filenames]:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISSOCK(st.st_mode):
                continue
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail: object = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            else:
                detail = None
            entries[os.path.relpath(path, top)] = (st.st_mode, st.st_uid, st.st_gid, detail)
    return entries


def settled_digest(top: Path, timeout: float = 30.0) -> dict[str, tuple[object, ...]]:
    """The digest of a tree that a CT which just started may still write to (busybox init
    creates ``/run/utmp`` when it reaps the boot script): taken again until two readings a
    quarter second apart agree."""
    deadline = time.monotonic() + timeout
    digest = tree_digest(top)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        again = tree_digest(top)
        if again == digest:
            return digest
        digest = again
    raise AssertionError(f"{top} kept changing for {timeout} s")


def changes(before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]) -> list[str]:
    """The entries added, removed or changed between two digests."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
