"""A CT's btrfs area as the hooks use it (see :mod:`vzcore_disk.btrfs`).

``VE_PRIVATE`` keeps the area's marker and the grace state; the CT's files live in the
subvolume ``BTRFS_POOL/CTID``, bind-mounted at ``VE_ROOT``.  The pool is written into the
CT's config at create, so a later change of vz.conf's default does not lose the CT."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore import areas
from vzcore.errors import DestroyError, InvalidValue
from vzcore.linux import mounts, safefs
from vzcore.values import LONG_MAX
from vzcore_disk import btrfs, grace, layouts, limits
from vzcore_disk.image import Usage

if TYPE_CHECKING:
    from vzcore.container import Container

LAYOUT = "btrfs"


def pool_of(ct: Container) -> Path:
    text = ct.get("BTRFS_POOL")
    if not text or not text.startswith("/"):
        raise InvalidValue(f"CT {ct.ctid}: layout btrfs needs BTRFS_POOL in vz.conf: the absolute "
                           "path of a mounted btrfs file system for the CTs' subvolumes")
    return ct.paths.host(text)


def subvolume_of(ct: Container) -> Path:
    return pool_of(ct) / str(ct.ctid)


def check_pool(ct: Container) -> None:
    """Refuse a pool that is not btrfs, or that counts in full qgroup mode (a CT's own
    subvolume would escape its limit there)."""
    pool = pool_of(ct)
    if not pool.is_dir() or not btrfs.is_btrfs(pool):
        raise InvalidValue(f"CT {ct.ctid}: BTRFS_POOL {pool} is not a directory on a btrfs file "
                           "system; mount one there or fix BTRFS_POOL in vz.conf")
    if btrfs.quota_mode(pool) == "qgroup":
        raise InvalidValue(f"CT {ct.ctid}: BTRFS_POOL {pool} counts full qgroups, where a CT "
                           "escapes its limit through a subvolume of its own; switch the pool to "
                           f"simple quotas ('btrfs quota disable {pool}': vzcore enables them)")
    if subvolume_of(ct).exists():
        raise InvalidValue(f"CT {ct.ctid}: {subvolume_of(ct)} already exists in BTRFS_POOL; remove "
                           "it or choose another CT ID")


def make(ct: Container) -> None:
    check_pool(ct)
    pool = pool_of(ct)
    wanted = limits.of(ct)
    if btrfs.quota_mode(pool) is None:
        btrfs.enable_simple_quota(ct.ctid, pool)
    layouts.make_private(ct)
    if ct.config.get("BTRFS_POOL") is None:
        ct.config.set("BTRFS_POOL", ct.get("BTRFS_POOL"))
        ct.config.save()
    btrfs.create(ct.ctid, pool, subvolume_of(ct),
                 wanted.space_hard if wanted.space_set else None)
    ct.root.mkdir(mode=0o755, parents=True, exist_ok=True)
    mount(ct)


def mount(ct: Container) -> None:
    mounts.bind(subvolume_of(ct), ct.root, recursive=False)
    enforce(ct)


def umount(ct: Container) -> None:
    mounts.umount(ct.root)


def state_path(ct: Container) -> Path:
    """Where the soft limits' grace state is kept (:mod:`vzcore_disk.grace`)."""
    return ct.private


def mounted(ct: Container) -> bool:
    return mounts.is_mount_point(ct.root)


def destroy(ct: Container) -> None:
    marker = areas.read_marker(ct.private)
    if marker is not None and marker != str(ct.ctid):
        raise DestroyError(f"CT {ct.ctid}: private area {ct.private} is marked as CT {marker}'s; "
                           "left in place")
    pool = pool_of(ct)
    if pool.is_dir() and btrfs.is_btrfs(pool):
        btrfs.delete(ct.ctid, pool, subvolume_of(ct))
    if ct.private.exists():
        safefs.remove_tree(ct.private)


def usage(ct: Container, *, inodes: bool = True) -> Usage:
    """The qgroup's use and limit (two sysfs reads) and, with ``inodes``, the CT's inodes,
    which btrfs does not count per subvolume: a walk of the whole subvolume, so only
    ``vzctl quota`` and vzlist's ``diskinodes`` fields ask for it (0 without)."""
    used, limit = btrfs.referenced_kblocks(pool_of(ct), ct.ctid)
    count = btrfs.count_inodes(subvolume_of(ct)) if inodes else 0
    return Usage(used, limit if limit is not None else LONG_MAX, count, LONG_MAX)


def resize(ct: Container, old: limits.Limits, new: limits.Limits) -> None:
    """A qgroup limit changes at once, up or down, mounted or not."""
    btrfs.set_limit(ct.ctid, pool_of(ct), new.space_hard if new.space_set else None)


def enforce(ct: Container, wanted: limits.Limits | None = None) -> grace.Grace:
    """Past grace the qgroup's limit drops to the soft one (see :mod:`vzcore_disk.grace`).
    Blocks only: btrfs limits no inodes, so this path (every mount and start) never walks
    the subvolume to count them."""
    wanted = wanted or limits.of(ct)
    used = usage(ct, inodes=False)
    before = grace.load(state_path(ct))
    after = grace.next_state(before, used, wanted, time.time())
    if not wanted.space_set:
        return after
    limit = wanted.space_soft if after.enforced else wanted.space_hard
    if limit != used.blocks_total:
        btrfs.set_limit(ct.ctid, pool_of(ct), limit)
    if after != before:
        grace.save(state_path(ct), after)
    return after


def statfs_figures(ct: Container) -> dict[str, str] | None:
    """For the notify plugin (``run.options[DISK_FIGURES_OPTION]``): the qgroup's sysfs
    files when the CT has a diskspace limit, so that ``df`` inside shows it (btrfs's own
    statfs shows the whole pool); ``None`` without a limit."""
    pool = pool_of(ct)
    if btrfs.referenced_kblocks(pool, ct.ctid)[1] is None:
        return None
    used_file, limit_file = btrfs.qgroup_files(pool, ct.ctid)
    return {"used_file": str(used_file), "limit_file": str(limit_file)}
