"""Usage and limits as ``vzctl quota`` and vzlist show them."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import attrs

from vzcore.values import LONG_MAX
from vzcore_disk import grace, limits

if TYPE_CHECKING:
    from vzcore.container import Container


@attrs.frozen
class Row:
    """One vzquota stat line: usage, soft, hard, grace seconds left (``None``: not over)."""

    resource: str
    usage: int | None
    softlimit: int
    hardlimit: int
    grace: int | None


def rows(ct: Container, *, inodes: bool = True) -> list[Row]:
    """The CT's 1k-blocks and inodes rows (usage ``None`` where its layout cannot tell, or
    for inodes a btrfs CT counts only by a walk when ``inodes`` is False)."""
    from vzcore_disk import area, layouts

    wanted = limits.of(ct)
    used = None
    state = grace.Grace()
    layout = layouts.limiter(ct)
    if ct.layout in ("image", "overlay") and area.image.image_of(ct.private).exists():
        used = area.usage(ct)
        state = grace.load(area.state_path(ct))
        # the image's own size and inode count are its hard limits, whatever the config says
        wanted = attrs.evolve(wanted, space_hard=used.blocks_total, inodes_hard=used.inodes_total,
                              space_soft=min(wanted.space_soft, used.blocks_total),
                              inodes_soft=min(wanted.inodes_soft, used.inodes_total))
    elif layout is not None and ct.private.exists():
        # simfs: the project's counters, or a walk of a tree without limits
        used = layout.usage(ct, inodes=inodes) if layout.LAYOUT == "btrfs" else layout.usage(ct)
        state = grace.load(layout.state_path(ct))
    return [
        Row("1k-blocks", used.blocks_used if used else None, wanted.space_soft,
            wanted.space_hard, grace.remaining(state.space_since, wanted.quotatime)),
        Row("inodes", used.inodes_used if used and inodes else None, wanted.inodes_soft,
            wanted.inodes_hard, grace.remaining(state.inodes_since, wanted.quotatime)),
    ]


def ugid_text(ct: Container) -> str:
    """The second-level quota's line (vzquota stat -t's "Ugids"), empty when it is off:
    the user and group IDs with a quota entry against ``QUOTAUGIDLIMIT``, counted from the
    mounted image (the kernel keeps no bound on them: docs/disk.md)."""
    from vzcore_disk import area, image, ugid

    limit = ugid.limit_of(ct)
    if limit == 0 or ct.layout != area.LAYOUT:
        return ""
    if not area.mounted(ct):
        return f"User/group quota: on, ugids - limit {limit} (counted while mounted)\n"
    device = image.device_of(ct.ctid, image.image_of(ct.private), ct.root)
    count = ugid.count_ids(device)
    return (f"User/group quota: on, ugids {count} limit {limit}"
            + (" (limit exceeded)" if count > limit else "") + "\n")


def fields(ct: Container, names: Collection[str]) -> dict[str, Any]:
    """vzlist's diskspace and diskinodes objects, of those in ``names`` (a btrfs CT's inodes
    are counted by a walk of its subvolume: only when asked)."""
    space, inodes = rows(ct, inodes="diskinodes" in names)
    found = {"diskspace": _object(space), "diskinodes": _object(inodes)}
    return {name: value for name, value in found.items() if name in names}


def _object(row: Row) -> dict[str, Any]:
    return {"usage": row.usage, "softlimit": _limit(row.softlimit), "hardlimit": _limit(row.hardlimit)}


def _limit(value: int) -> int | None:
    return None if value >= LONG_MAX else value


def stat_text(table: list[Row]) -> str:
    """vzquota stat's layout (reference 5.5): ``"%11s %14s  %14s %14s %8s"``; usage gets
    ``*`` when over a limit; grace is blank under the soft limit, ``none`` once expired."""
    out = [_line("resource", "usage", "softlimit", "hardlimit", "grace")]
    for row in table:
        usage = "-" if row.usage is None else str(row.usage)
        if row.usage is not None and row.usage > row.softlimit:
            usage += "*"
        left = "" if row.grace is None else ("none" if row.grace == 0 else _duration(row.grace))
        out.append(_line(row.resource, usage, _text(row.softlimit), _text(row.hardlimit), left))
    return "".join(out)


def _line(*cells: str) -> str:
    resource, usage, soft, hard, left = cells
    return f"{resource:>11} {usage:>14}  {soft:>14} {hard:>14} {left:>8}".rstrip() + "\n"


def _text(value: int) -> str:
    return "unlimited" if value >= LONG_MAX else str(value)


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)  # vzquota's style: 6d23h, 5h12m, 4m30s
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d{hours}h"
    return f"{hours}h{rest // 60}m" if hours else f"{rest // 60}m{rest % 60}s"
