"""User-namespace ID maps: which host IDs a CT's root and users are (``LOCAL_UID``/``LOCAL_GID``).

A CT with ``LOCAL_UID=N`` runs in a user namespace where its IDs ``0..65535`` are host IDs
``N..N+65535``: its root is not the host's root. ``LOCAL_UID=0`` is the privileged profile
(no user namespace). New CTs get a range of their own: the first free 65536-aligned range
above ``LOCAL_UID`` of vz.conf (default 100000) that no other CT uses.

A CT may instead carry a general map (``LOCAL_UID_MAP``/``LOCAL_GID_MAP``, written by
vzcore-oci from an OCI spec's ``linux.uidMappings``/``gidMappings``): several ranges of any
size, ``INSIDE:HOST:COUNT`` each, as the kernel's ``uid_map`` takes them.  ``LOCAL_UID`` is
then the host ID of the CT's root (its ID 0, which such a map must map).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import attrs

RANGE = 65536
"""IDs per CT (0..65535 inside, as LXC and OpenVZ map them)."""

DEFAULT_BASE = 100000
MAX_ID = 2**32 - 2
MAX_RANGES = 340
"""Lines a ``uid_map`` may have (Linux 4.15 and later)."""
MAX_MAP_BYTES = 4096
"""A ``uid_map`` is written in one write(2) of less than a page."""


@attrs.frozen
class IdRange:
    """IDs ``inside..inside+count-1`` of the namespace are host ``host..host+count-1``."""

    inside: int
    host: int
    count: int

    def __str__(self) -> str:
        return f"{self.inside}:{self.host}:{self.count}"


class MapError(ValueError):
    """A general ID map the kernel (or vzcore) would not take; the message says why."""


def check_ranges(ranges: Sequence[IdRange], kind: str = "user") -> None:
    """Raise :class:`MapError` unless ``ranges`` is a map the kernel takes and vzcore runs a
    CT with: 1 to 340 ranges (less than 4096 bytes as map text) of at least one ID, within
    ``0..2^32-2`` on both sides, none
    overlapping another inside or on the host, ID 0 mapped (the CT's root: vzcore's init
    becomes it) and never to the host's ID 0 (that is the privileged profile)."""
    if not 1 <= len(ranges) <= MAX_RANGES:
        raise MapError(f"give 1 to {MAX_RANGES} {kind} ID ranges (the kernel's limit), "
                       f"not {len(ranges)}")
    for r in ranges:
        if r.count < 1 or r.inside < 0 or r.host < 0 or r.inside + r.count - 1 > MAX_ID \
                or r.host + r.count - 1 > MAX_ID:
            raise MapError(f"{kind} ID range {r} (inside:host:count) is empty or not within "
                           f"0..{MAX_ID}")
    for side in ("inside", "host"):
        spans = sorted(ranges, key=lambda r: getattr(r, side))
        for first, second in itertools.pairwise(spans):
            if getattr(second, side) < getattr(first, side) + first.count:
                raise MapError(f"{kind} ID ranges {first} and {second} overlap "
                               f"{'in the container' if side == 'inside' else 'on the host'}")
    text = "".join(f"{r.inside} {r.host} {r.count}\n" for r in ranges)
    if len(text) >= MAX_MAP_BYTES:
        raise MapError(f"the {kind} ID map is {len(text)} bytes as the kernel's map text; it "
                       f"takes less than {MAX_MAP_BYTES}: give fewer or larger ranges")
    if not any(r.inside == 0 for r in ranges):
        raise MapError(f"{kind} ID 0 (the container's root) is not mapped; vzcore needs it")
    if any(r.host == 0 for r in ranges):
        raise MapError(f"host {kind} ID 0 (the host's root) is mapped; a container with a user "
                       "namespace must not have it")


def parse_ranges(text: str, kind: str = "user") -> tuple[IdRange, ...]:
    """``INSIDE:HOST:COUNT`` items, space-separated (``LOCAL_UID_MAP``), checked."""
    ranges = []
    for item in text.split():
        parts = item.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise MapError(f"{item!r} is not INSIDE:HOST:COUNT")
        ranges.append(IdRange(*(int(p) for p in parts)))
    check_ranges(ranges, kind)
    return tuple(ranges)


def format_ranges(ranges: Iterable[IdRange]) -> str:
    """The inverse of :func:`parse_ranges`."""
    return " ".join(str(r) for r in ranges)


def _host_of(ranges: Sequence[IdRange], value: int, kind: str) -> int:
    for r in ranges:
        if r.inside <= value < r.inside + r.count:
            return r.host + value - r.inside
    raise ValueError(f"{kind} ID {value} is outside the CT's IDs (its {kind} ID map, "
                     f"INSIDE:HOST:COUNT: {format_ranges(ranges)})")


@attrs.frozen
class IdMap:
    """A CT's ID mapping: inside ``0..size-1`` -> host ``uid_base..`` / ``gid_base..``, or
    the general ranges ``uids``/``gids`` (:meth:`of_ranges`; ``uid_base``/``gid_base`` are
    then the host IDs of the CT's root)."""

    uid_base: int = attrs.field(validator=attrs.validators.ge(1))
    gid_base: int = attrs.field(validator=attrs.validators.ge(1))
    size: int = RANGE
    uids: tuple[IdRange, ...] = ()
    gids: tuple[IdRange, ...] = ()

    @classmethod
    def of_ranges(cls, uids: Sequence[IdRange], gids: Sequence[IdRange]) -> IdMap:
        """A general map (checked: :func:`check_ranges`)."""
        check_ranges(uids, "user")
        check_ranges(gids, "group")
        return cls(_host_of(uids, 0, "user"), _host_of(gids, 0, "group"), uids=tuple(uids),
                   gids=tuple(gids))

    @property
    def uid_ranges(self) -> tuple[IdRange, ...]:
        return self.uids or (IdRange(0, self.uid_base, self.size),)

    @property
    def gid_ranges(self) -> tuple[IdRange, ...]:
        return self.gids or (IdRange(0, self.gid_base, self.size),)

    def host_uid(self, uid: int) -> int:
        """The host UID of the CT's ``uid``; an ID the map leaves out raises ValueError."""
        return _host_of(self.uid_ranges, uid, "user")

    def host_gid(self, gid: int) -> int:
        return _host_of(self.gid_ranges, gid, "group")

    @property
    def root(self) -> tuple[int, int]:
        """Host (uid, gid) of the CT's root: the owner of files the host writes for it."""
        return self.uid_base, self.gid_base

    def uid_map(self) -> str:
        """``/proc/PID/uid_map`` contents."""
        return "".join(f"{r.inside} {r.host} {r.count}\n" for r in self.uid_ranges)

    def gid_map(self) -> str:
        return "".join(f"{r.inside} {r.host} {r.count}\n" for r in self.gid_ranges)


def allocate(base: int, taken: Iterable[int]) -> int:
    """The first range start ``base + k * RANGE`` overlapping none of the ``taken`` starts."""
    used = sorted(set(taken))
    candidate = base
    while any(start < candidate + RANGE and candidate < start + RANGE for start in used):
        candidate += RANGE
    if candidate + RANGE > MAX_ID:
        raise ValueError("no free user-namespace ID range is left below 2^32")
    return candidate
