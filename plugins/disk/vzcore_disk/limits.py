"""The CT's first-level quota settings, read from its config (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from vzcore.values import LONG_MAX, PairOf, Size

if TYPE_CHECKING:
    from vzcore.container import Container

DISKSPACE = PairOf(Size(1024), names=("soft", "hard"), metavar="S[:H]")
"""``--diskspace soft[:hard]`` in 1K blocks (K, M, G, T suffixes)."""
DISKINODES = PairOf(Size(0), names=("soft", "hard"), metavar="S[:H]")
"""``--diskinodes soft[:hard]``: a count of inodes."""
DEFAULT_QUOTATIME = 0
"""OpenVZ's default grace: none; past the soft limit writes are refused at once."""
MIN_IMAGE_KBLOCKS = 16 * 1024
"""The smallest image: ext4's 4 MB journal and metadata need room beside the files."""
MIN_INODES = 1024


@attrs.frozen
class Limits:
    """Soft and hard limits in 1K blocks and inodes (``LONG_MAX``: unlimited)."""

    space_soft: int = LONG_MAX
    space_hard: int = LONG_MAX
    inodes_soft: int = LONG_MAX
    inodes_hard: int = LONG_MAX
    quotatime: int = DEFAULT_QUOTATIME

    @property
    def space_set(self) -> bool:
        return self.space_hard < LONG_MAX

    @property
    def inodes_set(self) -> bool:
        return self.inodes_hard < LONG_MAX


def of(ct: Container, overrides: dict[str, str | None] | None = None) -> Limits:
    """The CT's limits from its config (and vz.conf's defaults), with ``overrides``
    (config key -> new text) applied; the values were validated when they were set."""
    def text(key: str) -> str | None:
        if overrides and key in overrides:
            return overrides[key]
        return ct.get(key)

    space = text("DISKSPACE")
    inodes = text("DISKINODES")
    quotatime = text("QUOTATIME")
    s = DISKSPACE.parse(space) if space else None
    i = DISKINODES.parse(inodes) if inodes else None
    return Limits(s.soft if s else LONG_MAX, s.hard if s else LONG_MAX,
                  i.soft if i else LONG_MAX, i.hard if i else LONG_MAX,
                  int(quotatime) if quotatime else DEFAULT_QUOTATIME)
