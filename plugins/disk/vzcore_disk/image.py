"""The ``image`` layout: an ext4 file system in a sparse image file in the private area.

``VE_PRIVATE/root.hdd/root.hds`` is the file system (OpenVZ's ploop names), attached to a
loop device only while it is mounted at ``VE_ROOT``: ``mount -o loop`` sets the device to
clear itself when the file system is unmounted.  The image's size is the hard diskspace
limit and its inode count the hard diskinodes limit, so the kernel enforces both: a write
beyond them fails with ENOSPC inside the CT and takes nothing more from the host.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs

from vzcore.errors import MountError, VzError
from vzcore.linux import loop, mounts
from vzcore_disk.tools import run

BLOCK = 4096
"""ext4 block size: the image's size is rounded down to whole blocks."""


def image_of(private: Path) -> Path:
    return private / "root.hdd" / "root.hds"


@attrs.frozen
class Usage:
    """Use and size of a CT's file system, in 1K blocks and inodes."""

    blocks_used: int
    blocks_total: int
    inodes_used: int
    inodes_total: int


def make(ctid: int, image: Path, kblocks: int, inodes: int) -> None:
    """Make a sparse image holding an ext4 file system of ``kblocks`` usable 1K blocks (as
    ``df`` shows them) and about ``inodes`` inodes (mke2fs rounds to whole inode-table
    blocks), its root directory owned by the host's root, as a new simfs directory is: the
    template shifts owners into an unprivileged CT's range (:func:`own_unshifted`).

    The image is larger than ``kblocks`` by ext4's own metadata (journal, inode tables), so
    that the CT sees the size it was given, as it did under vzquota."""
    image.parent.mkdir(mode=0o700, exist_ok=True)
    with open(image, "xb"):
        pass
    _mkfs(ctid, image, kblocks, inodes, [])
    sb = superblock(ctid, str(image))
    extra = int(sb.get("Overhead clusters", "0")) * int(sb["Block size"]) // 1024
    if extra:  # the same journal mke2fs chose for the size given (a larger image gets more)
        journal = sb.get("Total journal size", "").removesuffix("k")
        _mkfs(ctid, image, kblocks + extra, inodes,
              ["-J", f"size={max(1, int(journal) // 1024)}"] if journal.isdigit() else [])


def _mkfs(ctid: int, image: Path, kblocks: int, inodes: int, options: list[str]) -> None:
    with open(image, "r+b") as f:
        f.truncate(0)
        f.truncate(kblocks * 1024 // BLOCK * BLOCK)
    # -m 0: nothing reserved for the host's root now (the soft limit's grace uses the
    # reserve later); -N: the inode count is the hard diskinodes limit.  The file is new
    # and sparse, so its unwritten inode tables and journal read as zeros already: lazy
    # init leaves them unwritten (a 1G image takes 0.7 MB of the host's disk, not 33 MB of
    # zeros), and the mount's noinit_itable keeps the kernel from zeroing them later.
    run(ctid, "make the image's file system",
        ["mkfs.ext4", "-q", "-F", "-m", "0", "-b", str(BLOCK), "-N", str(inodes),
         "-E", "lazy_itable_init=1,lazy_journal_init=1", *options,
         "-L", f"ct{ctid}", str(image)])


def overhead_kblocks(ctid: int, target: str) -> int:
    """ext4's own metadata in 1K blocks (what ``df`` leaves out of the size)."""
    sb = superblock(ctid, target)
    return int(sb.get("Overhead clusters", "0")) * int(sb["Block size"]) // 1024


def own_unshifted(root: Path, owner: tuple[int, int]) -> None:
    """Give the CT's root the file system's root and ``lost+found`` where the template
    left them the host's (a tarball without a ``./`` entry does; busybox shifts them)."""
    for path in (root / "lost+found", root):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if (st.st_uid, st.st_gid) == (0, 0) and owner != (0, 0):
            os.lchown(path, *owner)


def check(ctid: int, image: Path) -> None:
    """``e2fsck -p`` before a mount: a file system left unclean (a crash, a killed vzctl, a
    host reset) has its journal replayed and is repaired; a clean one is checked in
    milliseconds.  Damage that needs a human refuses the mount with the command to run."""
    done = run(ctid, "check the image's file system", ["e2fsck", "-p", str(image)],
               ok=(0, 1, 2, 4, 8))
    if done.returncode >= 4:
        raise MountError(f"CT {ctid}: the file system in {image} has errors e2fsck -p cannot "
                         f"repair; run 'e2fsck -f {image}' by hand, then mount again")


def mount(ctid: int, image: Path, root: Path, *, ugid_quota: bool | None = None) -> None:
    """Check, attach and mount the image at ``root``.  ``ugid_quota``: give the file
    system user and group quota, enforced (True), or take it away (False) first; ``None``
    leaves it as it is and mounts without enforcing it (a short mount of vzcore's own)."""
    loop.ensure_module()
    detach_unmounted(image)
    check(ctid, image)
    options = ["loop", "noinit_itable"]
    if ugid_quota is not None:
        from vzcore_disk import ugid

        features = superblock(ctid, str(image)).get("Filesystem features", "")
        ugid.set_feature(ctid, image, ugid_quota, features)
        if ugid_quota:
            options += ugid.MOUNT_OPTIONS
    run(ctid, f"mount {image}",
        ["mount", "-t", "ext4", "-o", ",".join(options), str(image), str(root)])


def umount(root: Path, image: Path) -> None:
    """Unmount ``root`` and free the image's loop devices (idempotent).

    The kernel frees an auto-clearing device at its last close, and udev's probe of the
    change may hold it open a moment after the unmount: wait for that (a few ms), so the
    verb ends with no device left, as ``losetup`` will show."""
    mounts.umount(root)
    if not image.exists():
        return
    detach_unmounted(image)
    deadline = time.monotonic() + 5
    while loop.devices_of(image) and time.monotonic() < deadline:
        time.sleep(0.01)


def detach_unmounted(image: Path) -> None:
    """Detach the image's loop devices that carry no mount (left by a killed ``mount``)."""
    busy = {e.source for e in mounts.mountinfo()}
    for device in loop.devices_of(image):
        if device not in busy:
            try:
                loop.detach(device)
            except VzError:
                if Path(f"/sys/block/{device[5:]}/loop").exists():
                    raise


def device_of(ctid: int, image: Path, root: Path) -> str:
    """The loop device the image is mounted from at ``root``."""
    target = os.path.realpath(root)
    for entry in mounts.mountinfo():
        if (entry.mount_point == target and entry.source.startswith("/dev/loop")
                and entry.source in loop.devices_of(image)):
            return entry.source
    raise MountError(f"CT {ctid}: {image} is not mounted at {root}")


def resize(ctid: int, image: Path, root: Path, kblocks: int, *, online: bool) -> None:
    """Give the image ``kblocks`` usable 1K blocks (as ``df`` counts them).

    ``online``: the image is mounted at ``root`` and only grows (``resize2fs`` on the
    mounted file system; ext4 needs CAP_SYS_RESOURCE for it).  Otherwise it is unmounted
    and ``root`` is a free mount point: after ``resize2fs`` the image is mounted there for a
    moment, so that the kernel counts its new metadata (resize2fs clears the superblock's
    count of it) and the size is checked.  New block groups bring inode tables of their
    own, so the first try may fall short by their size: a second one makes it up.
    """
    device = device_of(ctid, image, root) if online else None
    overhead = overhead_kblocks(ctid, device or str(image))
    for _ in range(3):
        blocks = -(-(kblocks + overhead) * 1024 // BLOCK)
        if device is not None:
            with open(image, "r+b") as f:
                f.truncate(max(blocks * BLOCK, os.fstat(f.fileno()).st_size))
            loop.refresh_capacity(device)
            run(ctid, "grow the mounted file system", ["resize2fs", device, str(blocks)])
            total = _usable(root)
        else:
            _resize_unmounted(ctid, image, blocks)
            mount(ctid, image, root)
            try:
                total = _usable(root)
            finally:
                umount(root, image)
        if kblocks <= total < kblocks + 1024 or (total > kblocks and device is not None):
            return
        overhead = blocks * BLOCK // 1024 - total


def _usable(root: Path) -> int:
    st = os.statvfs(root)
    return st.f_blocks * st.f_frsize // 1024


def _resize_unmounted(ctid: int, image: Path, blocks: int) -> None:
    # resize2fs wants a file system checked since its last mount
    run(ctid, "check the file system before resizing it", ["e2fsck", "-f", "-p", str(image)],
        ok=(0, 1))
    size = blocks * BLOCK
    with open(image, "r+b") as f:
        if size > os.fstat(f.fileno()).st_size:
            f.truncate(size)
    run(ctid, f"resize the file system to {size // 1024}K", ["resize2fs", str(image), str(blocks)])
    with open(image, "r+b") as f:
        f.truncate(size)


RESERVE_ID = 65535
"""Who may use the reserve besides CAP_SYS_RESOURCE in the host's user namespace: ext4's
``resuid``/``resgid`` are 16 bits, and its default, 0, is a privileged CT's root; 65535
((uint16)-1) is no one's ID in practice."""


def set_reserve(ctid: int, target: str, kblocks: int) -> None:
    """Reserve ``kblocks`` of the file system (``tune2fs -r``; the kernel takes the new
    count at once on a mounted file system): only a process with CAP_SYS_RESOURCE in the
    host's user namespace, which no CT has, or of ID :data:`RESERVE_ID` may use it."""
    run(ctid, "set the file system's reserve",
        ["tune2fs", "-r", str(kblocks * 1024 // BLOCK), "-u", str(RESERVE_ID),
         "-g", str(RESERVE_ID), target])


def superblock(ctid: int, target: str) -> dict[str, str]:
    """``dumpe2fs -h`` of an image or device, as a mapping of its field names."""
    done = run(ctid, "read the file system's superblock", ["dumpe2fs", "-h", target])
    fields = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def usage(ctid: int, image: Path, root: Path, mounted: bool) -> Usage:
    """Use and size as ``df`` inside shows them (the mounted file system), or from the
    superblock of an unmounted image (its counters are exact after a clean unmount)."""
    if mounted:
        st = os.statvfs(root)
        return Usage((st.f_blocks - st.f_bfree) * st.f_frsize // 1024,
                     st.f_blocks * st.f_frsize // 1024, st.f_files - st.f_ffree, st.f_files)
    sb = superblock(ctid, str(image))
    size = int(sb["Block size"]) // 1024
    total = int(sb["Block count"]) - int(sb.get("Overhead clusters", "0"))
    return Usage((total - int(sb["Free blocks"])) * size, total * size,
                 int(sb["Inode count"]) - int(sb["Free inodes"]), int(sb["Inode count"]))
