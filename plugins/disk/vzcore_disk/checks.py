"""What ``create`` and ``set`` may change on a CT's disk (no effects)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.errors import InvalidValue
from vzcore_disk import limits

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container

KEYS = ("DISKSPACE", "DISKINODES", "QUOTATIME")
LIMITING = ("image", "btrfs", "overlay")
"""The layouts on which the kernel enforces the limits."""


def validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    from vzcore_disk import area

    # the values parse: the saved ones at start (a hand-edited config is input too), the
    # new ones otherwise (the CLI parsed them; a caller of the hook may not have)
    limits.of(ct, {key: changes[key].new for key in KEYS if key in changes})
    _check_ugid(ct, changes, verb)
    if verb == "start":
        return
    if verb == "create" and ct.layout in (area.LAYOUT, "overlay"):
        area.require_size(ct, limits.of(ct))
        if ct.layout == "overlay":
            from vzcore_disk import overlay

            overlay.probe(ct)
        return
    if verb == "create" and ct.layout == "btrfs":
        from vzcore_disk import btrfs_area

        btrfs_area.check_pool(ct)
        if "DISKINODES" in changes:
            raise InvalidValue(_NO_INODE_QUOTA.format(ctid=ct.ctid))
        return
    given = [key for key in ("DISKSPACE", "DISKINODES") if key in changes
             and changes[key].new is not None and changes[key].new != changes[key].old]
    if not given:
        return
    option = f"--{given[0].lower()}"
    if ct.layout == "simfs":
        from vzcore_disk import project, simfs

        probed = project.missing(_existing(ct.private))
        if probed is not None:
            raise InvalidValue(
                f"CT {ct.ctid}: {option} cannot be enforced on layout simfs: a directory needs "
                f"project quota on its host file system, and {simfs.project_quota(ct.private)}"
                f" ({probed}); use --layout image or btrfs for a CT with limits (an existing "
                f"CT: 'vzctl convert {ct.ctid} --layout image --diskspace ...')")
        return
    if ct.layout not in LIMITING:
        raise InvalidValue(f"CT {ct.ctid}: {option} cannot be enforced on layout {ct.layout}; "
                           "use --layout image or btrfs for a CT with limits")
    if verb != "set":
        return
    if ct.layout == "btrfs":
        if "DISKINODES" in given:
            raise InvalidValue(_NO_INODE_QUOTA.format(ctid=ct.ctid))
        return
    old = limits.of(ct)
    new = limits.of(ct, {key: changes[key].new for key in KEYS if key in changes})
    area.require_size(ct, new)
    if new.inodes_hard != old.inodes_hard and "DISKINODES" in given:
        raise InvalidValue(
            f"CT {ct.ctid}: --diskinodes hard limit is the image's inode count, fixed when its "
            "file system was made (ext4 adds inodes only with space: growing --diskspace adds "
            f"them in proportion); keep the hard limit {_text(old.inodes_hard)} and change "
            "the soft one only")
    if new.space_hard > old.space_hard and area.mounted(ct) and not can_resize_online():
        raise InvalidValue(
            f"CT {ct.ctid}: --diskspace: growing a mounted image needs CAP_SYS_RESOURCE (ext4's "
            "online resize), which this vzctl does not have; run vzctl with it, or stop the CT "
            "and set it again with --save")
    if new.space_hard < old.space_hard:
        if area.mounted(ct):
            raise InvalidValue(
                f"CT {ct.ctid}: --diskspace: shrinking an image is offline (ext4 cannot shrink "
                f"while mounted); stop the CT ('vzctl stop {ct.ctid}', and 'vzctl umount "
                f"{ct.ctid}' if mounted), then set it again with --save")
        used = area.usage(ct)
        if used.blocks_used > new.space_hard:
            raise InvalidValue(
                f"CT {ct.ctid}: --diskspace hard limit {new.space_hard}K is below the "
                f"{used.blocks_used}K the CT uses; free space inside or give more")


def _check_ugid(ct: Container, changes: ChangeSet, verb: str) -> None:
    """Refuse a second-level quota that cannot hold (layout, profile, kernel): at create
    and set when given, at start when saved (the kernel may have changed since)."""
    from vzcore_disk import ugid

    given = "QUOTAUGIDLIMIT" in changes
    if not given and verb != "start" and ugid.INTERCEPT_KEY not in changes:
        return
    limit = ugid.limit_of(ct, changes["QUOTAUGIDLIMIT"].new if given else None, given=given)
    local_uid = changes["LOCAL_UID"].new if "LOCAL_UID" in changes else ct.get("LOCAL_UID")
    # a create without LOCAL_UID allocates a range: the CT will have a user namespace
    userns = (local_uid or "").strip() not in ("0",) if verb == "create" else ct.idmap is not None
    intercept = (changes[ugid.INTERCEPT_KEY].new if ugid.INTERCEPT_KEY in changes
                 else ct.get(ugid.INTERCEPT_KEY))
    message = ugid.refusal(ct, limit, userns=userns, intercept=(intercept or "default") != "off")
    if message is not None:
        raise InvalidValue(message)


_NO_INODE_QUOTA = ("CT {ctid}: --diskinodes cannot be enforced on layout btrfs, which has no "
                   "inode quota (vzctl quota counts the CT's inodes); leave it out, or use "
                   "--layout image")


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a new CT's private area is not made yet)."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def can_resize_online() -> bool:
    """ext4 resizes a mounted file system only for a caller with CAP_SYS_RESOURCE."""
    from vzcore.linux import caps

    return caps.in_effective_set(caps.NUMBERS["sys_resource"])


def _text(value: int) -> str:
    from vzcore.values import LONG_MAX

    return "unlimited" if value >= LONG_MAX else str(value)
