"""simfs (a plain directory, offered by the template plugin): usage by walking the tree, and
why its limits are refused (the probe of the host file system's project quota)."""

from __future__ import annotations

import os
from pathlib import Path

from vzcore.linux import mounts
from vzcore.values import LONG_MAX
from vzcore_disk.image import Usage


def usage(private: Path) -> Usage:
    """What ``du -s -x`` and a count of inodes give for the tree (hard links once)."""
    top = os.lstat(private)
    seen: set[int] = set()
    blocks = top.st_blocks
    inodes = 1
    stack = [str(private)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_dev != top.st_dev:
                        continue
                    if st.st_nlink > 1:
                        if st.st_ino in seen:
                            continue
                        seen.add(st.st_ino)
                    blocks += st.st_blocks
                    inodes += 1
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return Usage(blocks * 512 // 1024, LONG_MAX, inodes, LONG_MAX)


def project_quota(private: Path) -> str:
    """Why the host file system of ``private`` cannot limit it: its type and whether it
    counts project quota (the mount options ``prjquota``/``pquota`` say so)."""
    path = os.path.realpath(private if private.exists() else private.parent)
    best = None
    for entry in mounts.mountinfo():
        point = entry.mount_point.rstrip("/") + "/"
        if (path + "/").startswith(point) and (best is None or len(point) > len(best.mount_point) + 1):
            best = entry
    if best is None:
        return "its file system is unknown"
    options = set(best.super_options.split(",")) | set(best.options.split(","))
    where = f"{best.fstype} at {best.mount_point}"
    if best.fstype in ("ext4", "xfs") and options & {"prjquota", "pquota", "pqnoenforce"}:
        return f"{where} is mounted with project quota"
    if best.fstype in ("ext4", "xfs"):
        return f"{where} is mounted without project quota (mount option prjquota)"
    return f"{where} has no project quota (ext4 or XFS only)"
