"""A CT's image area as the hooks use it: make, mount, resize, measure, enforce the soft
limit, remove.  Everything is found from the CT's paths (no record): the loop device from
the image file, the mount from ``VE_ROOT``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore import areas
from vzcore.errors import DestroyError, InvalidValue
from vzcore.linux import mounts, safefs
from vzcore_disk import grace, image, layouts, limits

if TYPE_CHECKING:
    from vzcore.container import Container

LAYOUT = "image"


def where(ct: Container) -> Path:
    """Where the image is mounted: ``VE_ROOT``, or the upper layer's mount point of an
    ``overlay`` CT (whose upper layer is such an image: :mod:`vzcore_disk.overlay`)."""
    if ct.layout == "overlay":
        from vzcore_disk import overlay

        return overlay.upper_mount(ct)
    return ct.root


def require_size(ct: Container, wanted: limits.Limits) -> None:
    """Refuse an image without a size, or one too small to hold ext4's own metadata."""
    if not wanted.space_set:
        raise InvalidValue(f"CT {ct.ctid}: layout image needs a size: give --diskspace "
                           "SOFT[:HARD] (the hard limit is the image's size), or set DISKSPACE "
                           "in vz.conf")
    if wanted.space_hard < limits.MIN_IMAGE_KBLOCKS:
        raise InvalidValue(f"CT {ct.ctid}: --diskspace hard limit {wanted.space_hard}K is below "
                           f"the smallest image, {limits.MIN_IMAGE_KBLOCKS // 1024}M; give more")
    if wanted.inodes_set and wanted.inodes_hard < limits.MIN_INODES:
        raise InvalidValue(f"CT {ct.ctid}: --diskinodes hard limit {wanted.inodes_hard} is below "
                           f"{limits.MIN_INODES}; give more")


def make(ct: Container) -> None:
    """Make the private area holding a new image and mount it at ``VE_ROOT``."""
    wanted = limits.of(ct)
    require_size(ct, wanted)
    layouts.make_private(ct)
    inodes = wanted.inodes_hard if wanted.inodes_set else _default_inodes(wanted.space_hard)
    path = image.image_of(ct.private)
    image.make(ct.ctid, path, wanted.space_hard, inodes)
    where(ct).mkdir(mode=0o755, parents=True, exist_ok=True)
    image.resize(ct.ctid, path, where(ct), wanted.space_hard, online=False)  # df shows the size
    mount(ct)


def _default_inodes(kblocks: int) -> int:
    return max(limits.MIN_INODES, kblocks // 16)  # mke2fs's default: one inode per 16K


def mount(ct: Container) -> None:
    from vzcore_disk import ugid

    image.mount(ct.ctid, image.image_of(ct.private), where(ct),
                ugid_quota=ugid.limit_of(ct) > 0)
    enforce(ct)


def umount(ct: Container) -> None:
    image.umount(where(ct), image.image_of(ct.private))


def destroy(ct: Container) -> None:
    marker = areas.read_marker(ct.private)
    if marker is not None and marker != str(ct.ctid):
        raise DestroyError(f"CT {ct.ctid}: private area {ct.private} is marked as CT {marker}'s; "
                           "left in place")
    path = image.image_of(ct.private)
    if path.exists():
        image.detach_unmounted(path)
    if ct.private.exists():
        safefs.remove_tree(ct.private)


def state_path(ct: Container) -> Path:
    """Where the soft limits' grace state is kept (:mod:`vzcore_disk.grace`)."""
    return ct.private


def mounted(ct: Container) -> bool:
    return mounts.is_mount_point(where(ct)) and image.image_of(ct.private).exists()


def usage(ct: Container) -> image.Usage:
    return image.usage(ct.ctid, image.image_of(ct.private), where(ct), mounted(ct))


def resize(ct: Container, old: limits.Limits, new: limits.Limits) -> None:
    """Give the image the new hard diskspace: grow online when mounted, shrink only when
    unmounted (the caller refused a shrink of a mounted CT)."""
    if new.space_hard == old.space_hard:
        return
    online = mounted(ct)
    if not online:
        where(ct).mkdir(mode=0o755, parents=True, exist_ok=True)
    image.resize(ct.ctid, image.image_of(ct.private), where(ct), new.space_hard, online=online)


def enforce(ct: Container, wanted: limits.Limits | None = None) -> grace.Grace:
    """Look at the CT's use against its soft limits and set the reserve that enforces the
    block soft limit past grace (see :mod:`vzcore_disk.grace`); returns the new state."""
    wanted = wanted or limits.of(ct)
    now = time.time()
    used = usage(ct)
    before = grace.load(state_path(ct))
    after = grace.next_state(before, used, wanted, now)
    path = image.image_of(ct.private)
    target = image.device_of(ct.ctid, path, where(ct)) if mounted(ct) else str(path)
    reserve = grace.reserve_kblocks(wanted, used.blocks_total) if after.enforced else 0
    current = int(image.superblock(ct.ctid, target).get("Reserved block count", "0"))
    if current * image.BLOCK // 1024 != reserve // (image.BLOCK // 1024) * (image.BLOCK // 1024):
        image.set_reserve(ct.ctid, target, reserve)
    if after != before:
        grace.save(state_path(ct), after)
    return after
