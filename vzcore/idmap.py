"""User-namespace ID maps: which host IDs a CT's root and users are (``LOCAL_UID``/``LOCAL_GID``).

A CT with ``LOCAL_UID=N`` runs in a user namespace where its IDs ``0..65535`` are host IDs
``N..N+65535``: its root is not the host's root. ``LOCAL_UID=0`` is the privileged profile
(no user namespace). New CTs get a range of their own: the first free 65536-aligned range
above ``LOCAL_UID`` of vz.conf (default 100000) that no other CT uses.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

RANGE = 65536
"""IDs per CT (0..65535 inside, as LXC and OpenVZ map them)."""

DEFAULT_BASE = 100000
MAX_ID = 2**32 - 2


@attrs.frozen
class IdMap:
    """A CT's ID mapping: inside ``0..size-1`` -> host ``uid_base..`` / ``gid_base..``."""

    uid_base: int = attrs.field(validator=attrs.validators.ge(1))
    gid_base: int = attrs.field(validator=attrs.validators.ge(1))
    size: int = RANGE

    def host_uid(self, uid: int) -> int:
        """The host UID of the CT's ``uid``; IDs outside the range raise ValueError."""
        return self.uid_base + self._check(uid, "user")

    def host_gid(self, gid: int) -> int:
        return self.gid_base + self._check(gid, "group")

    def _check(self, value: int, kind: str) -> int:
        if not 0 <= value < self.size:
            raise ValueError(f"{kind} ID {value} is outside the CT's IDs 0..{self.size - 1}")
        return value

    @property
    def root(self) -> tuple[int, int]:
        """Host (uid, gid) of the CT's root: the owner of files the host writes for it."""
        return self.uid_base, self.gid_base

    def uid_map(self) -> str:
        """``/proc/PID/uid_map`` contents."""
        return f"0 {self.uid_base} {self.size}\n"

    def gid_map(self) -> str:
        return f"0 {self.gid_base} {self.size}\n"


def allocate(base: int, taken: Iterable[int]) -> int:
    """The first range start ``base + k * RANGE`` overlapping none of the ``taken`` starts."""
    used = sorted(set(taken))
    candidate = base
    while any(start < candidate + RANGE and candidate < start + RANGE for start in used):
        candidate += RANGE
    if candidate + RANGE > MAX_ID:
        raise ValueError("no free user-namespace ID range is left below 2^32")
    return candidate
