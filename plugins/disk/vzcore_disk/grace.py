"""The soft limits and their grace time, enforced by vzcore (the kernel knows only the
image's size and inode count, the hard limits).

vzcore is no daemon.  It looks at a CT's use whenever a command touches its disk (``vzctl
quota``, ``start``, ``mount``, ``set``): use above a soft limit starts the grace time
(``QUOTATIME`` seconds), kept in ``VE_PRIVATE/quota.json``; once the grace is over, the
image's ext4 reserve (``tune2fs -r``, blocks only the host's root may use) is set to
``hard - soft``, and from then on the kernel refuses the CT's writes beyond the soft limit,
as vzquota does past grace.  Once use is back under the soft limit, the next look lifts
the reserve and resets the grace.  ext4 reserves at most half of a file system
(``tune2fs``'s rule), so a soft limit below half the hard one is enforced at half.  Inodes
have no reserve in ext4: past grace, the inode soft limit is reported, not enforced.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import attrs

from vzcore_disk.image import Usage
from vzcore_disk.limits import Limits


@attrs.frozen
class Grace:
    """Since when the block soft limit is exceeded (epoch seconds), and whether the
    reserve that enforces it is set."""

    space_since: float | None = None
    inodes_since: float | None = None
    enforced: bool = False


def path_of(private: Path) -> Path:
    """``private``/quota.json, or ``private`` itself when it names a ``.json`` file (a simfs
    CT's state lives beside its directory, which is the CT's own ``/``)."""
    return private if private.suffix == ".json" else private / "quota.json"


def load(private: Path) -> Grace:
    try:
        data = json.loads(path_of(private).read_text())
        return Grace(data.get("space_since"), data.get("inodes_since"), bool(data.get("enforced")))
    except (OSError, ValueError, AttributeError):
        return Grace()


def save(private: Path, grace: Grace) -> None:
    target = path_of(private)
    temp = target.with_name(f".{target.name}.tmp")
    with open(temp, "w") as f:
        json.dump(attrs.asdict(grace), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, target)


def next_state(grace: Grace, usage: Usage, limits: Limits, now: float) -> Grace:
    """The grace state after looking at ``usage`` at ``now`` (pure)."""
    over_space = usage.blocks_used > limits.space_soft
    over_inodes = usage.inodes_used > limits.inodes_soft
    space_since = (grace.space_since or now) if over_space else None
    inodes_since = (grace.inodes_since or now) if over_inodes else None
    expired = space_since is not None and now - space_since >= limits.quotatime
    return Grace(space_since, inodes_since, expired)


def reserve_kblocks(limits: Limits, total_kblocks: int) -> int:
    """The reserve that stops the CT at its soft limit: ``hard - soft``, at most half."""
    return max(0, min(limits.space_hard - limits.space_soft, total_kblocks // 2))


def remaining(since: float | None, quotatime: int, now: float | None = None) -> int | None:
    """Seconds of grace left (``0``: over), ``None`` when not over the soft limit."""
    if since is None:
        return None
    return max(0, int(since + quotatime - (now if now is not None else time.time())))
