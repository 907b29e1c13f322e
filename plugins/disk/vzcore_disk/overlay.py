"""The ``overlay`` layout: the template's shared tree below, the CT's changes above.

The lower layer is the template's tree unpacked once for every CT made from it (the
template plugin's ``$TEMPLATE/shared/NAME@VERSION``, named by the CT's ``OVERLAY_LOWER``),
owned ``0..65535`` as in the tarball.  The upper layer is an ext4 image like the
``image`` layout's (the same code: :mod:`vzcore_disk.area`, mounted at
``VE_PRIVATE/mnt`` instead of ``VE_ROOT``), holding ``root/`` (the CT's changes) and
``work/`` (overlayfs's): its size and inode count are the hard diskspace and diskinodes
limits, and ``df /`` inside shows it (overlayfs reports its upper layer's statfs).

An unprivileged CT sees the lower layer through an idmapped mount carrying its mapping
(:mod:`vzcore.linux.idmapped`), attached at ``VE_PRIVATE/lower`` only while the overlay is
mounted over it and detached at once (overlayfs keeps its own private copy of each
layer); its upper layer is stored shifted (copied-up files take the owner the idmapped
lower shows), so the CT's root owns its changes.  Nothing is recorded: a killed mount
leaves at most the upper image mounted and an idmapped mount at ``VE_PRIVATE/lower``,
which the next mount, umount or destroy removes (:func:`clear`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.errors import InvalidValue, MountError
from vzcore.faults import checkpoint
from vzcore.linux import mounts
from vzcore.paths import DEFAULTS
from vzcore_disk import area, grace, limits
from vzcore_disk.image import Usage

if TYPE_CHECKING:
    from vzcore.container import Container

LAYOUT = "overlay"
LOWER_KEY = "OVERLAY_LOWER"
"""The config key naming the CT's shared tree (written by the template plugin at create)."""


def upper_mount(ct: Container) -> Path:
    """Where the upper layer's image is mounted."""
    return ct.private / "mnt"


def lower_stage(ct: Container) -> Path:
    """Where the idmapped lower layer is attached while the overlay is being mounted."""
    return ct.private / "lower"


def lower_of(ct: Container) -> Path:
    text = ct.get(LOWER_KEY)
    if not text or not text.startswith("/"):
        raise MountError(f"CT {ct.ctid}: layout overlay needs {LOWER_KEY} in its config (the "
                         "template's shared tree, written at create); the config lost it")
    tree = ct.paths.host(text)
    if not tree.is_dir():
        raise MountError(f"CT {ct.ctid}: its template tree {tree} ({LOWER_KEY}) is missing; "
                         "it cannot be mounted without it")
    return tree


def probe(ct: Container) -> None:
    """Refuse the layout where the kernel or the template area's file system cannot
    mount it (an unprivileged CT needs idmapped mounts and overlayfs over them)."""
    from vzcore.linux import idmapped

    place = ct.paths.host(ct.get("TEMPLATE") or DEFAULTS["TEMPLATE"])
    while not place.is_dir():  # the shared trees are made below it, on its file system
        place = place.parent
    reason = idmapped.probe_overlay(place, ct.idmap)
    if reason is not None:
        profile = "an unprivileged CT" if ct.idmap is not None else "a CT"
        raise InvalidValue(f"CT {ct.ctid}: --layout overlay is not available for {profile} "
                           f"here: {reason}; use --layout image")


def make(ct: Container) -> None:
    """Make the private area with the upper layer's image, its ``root/`` owned by the CT's
    root and ``work/``; leaves nothing mounted (the template plugin makes the lower layer
    next; the first mount is the start's)."""
    area.make(ct)  # the image, mounted at upper_mount
    try:
        top = upper_mount(ct)
        (top / "root").mkdir(mode=0o755)
        os.chown(top / "root", *ct.root_owner)
        (top / "work").mkdir(mode=0o700)
    finally:
        area.umount(ct)
    lower_stage(ct).mkdir(mode=0o700, exist_ok=True)
    ct.root.mkdir(mode=0o755, parents=True, exist_ok=True)


def _escape(path: Path) -> str:
    """A path as overlayfs's options take it (``,`` and ``:`` separate options and layers)."""
    return str(path).replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def mount(ct: Container) -> None:
    """Mount the upper image, the (idmapped) lower, then the overlay at ``VE_ROOT``."""
    from vzcore.linux import idmapped

    clear(ct)
    lower = lower_of(ct)
    area.mount(ct)
    try:
        checkpoint("mount:overlay-upper-mounted")
        source = lower
        idmap = ct.idmap
        stage = lower_stage(ct)
        if idmap is not None:
            stage.mkdir(mode=0o700, exist_ok=True)
            idmapped.mount_idmapped(lower, stage, idmap)
            source = stage
            checkpoint("mount:overlay-lower-idmapped")
        try:
            top = upper_mount(ct)
            mounts.mount("overlay", ct.root, "overlay",
                         data=f"lowerdir={_escape(source)},upperdir={_escape(top / 'root')},"
                              f"workdir={_escape(top / 'work')}")
        finally:
            if idmap is not None:  # the overlay holds its own copy of the layer
                mounts.umount(stage, detach=True)
    except BaseException:
        clear(ct)
        raise


def clear(ct: Container) -> None:
    """Unmount whatever a mount (or a killed one) left below the private area."""
    mounts.umount(lower_stage(ct), detach=True)
    if area.mounted(ct):
        area.umount(ct)
    elif area.image.image_of(ct.private).exists():
        area.image.detach_unmounted(area.image.image_of(ct.private))


def umount(ct: Container) -> None:
    mounts.umount(ct.root)
    clear(ct)


def mounted(ct: Container) -> bool:
    return area.mounted(ct)


def state_path(ct: Container) -> Path:
    """Where the soft limits' grace state is kept: ``VE_PRIVATE``, as for an image."""
    return ct.private


def destroy(ct: Container) -> None:
    if ct.private.exists():
        clear(ct)
    area.destroy(ct)


def usage(ct: Container) -> Usage:
    return area.usage(ct)


def resize(ct: Container, old: limits.Limits, new: limits.Limits) -> None:
    area.resize(ct, old, new)


def enforce(ct: Container, wanted: limits.Limits | None = None) -> grace.Grace:
    return area.enforce(ct, wanted)
