"""The CT's first-level quota settings, read from its config (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from vzcore.errors import InvalidValue
from vzcore.values import LONG_MAX, Integer, PairOf, Size

if TYPE_CHECKING:
    from vzcore.container import Container

DISKSPACE = PairOf(Size(1024), names=("soft", "hard"), metavar="S[:H]")
"""``--diskspace soft[:hard]`` in 1K blocks (K, M, G, T suffixes)."""
DISKINODES = PairOf(Size(0), names=("soft", "hard"), metavar="S[:H]")
"""``--diskinodes soft[:hard]``: a count of inodes."""
QUOTATIME = Integer(0, 2**31 - 1)
"""``--quotatime seconds``."""
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

    def parsed(key: str, grammar: Any) -> Any:
        value = text(key)
        if not value:
            return None
        try:
            return grammar.parse(value)
        except ValueError as exc:  # a hand-edited config is input too
            raise InvalidValue(f"CT {ct.ctid}: {key}={value!r} in its config: {exc}; set it "
                               f"again with 'vzctl set {ct.ctid} --{key.lower()} ... --save'") from None

    s = parsed("DISKSPACE", DISKSPACE)
    i = parsed("DISKINODES", DISKINODES)
    quotatime = parsed("QUOTATIME", QUOTATIME)
    return Limits(s.soft if s else LONG_MAX, s.hard if s else LONG_MAX,
                  i.soft if i else LONG_MAX, i.hard if i else LONG_MAX,
                  quotatime if quotatime is not None else DEFAULT_QUOTATIME)
