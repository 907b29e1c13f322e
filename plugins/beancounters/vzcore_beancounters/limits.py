"""A CT's beancounter settings: config text to barrier:limit pairs (pure; no I/O).

Each beancounter's key (``NUMPROC="240:240"``) is parsed with OpenVZ's grammar.  Keys the
config does not set take OpenVZ's defaults, and in VSwap mode (``PHYSPAGES`` has a limit)
the implicit values of vzctl 4.6 and later (reference §2.4): lockedpages and oomguarpages
barriers = RAM, vmguarpages = RAM + swap, privvmpages = (RAM + swap) x VM_OVERCOMMIT or
unlimited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from vzcore.errors import InvalidValue
from vzcore.values import Pair, PairOf, Size
from vzcore_beancounters.resources import BY_NAME, RESOURCES, UNIT_SIZE, UNLIMITED, default_pair

Getter = Callable[[str], "str | None"]


def pair_type(name: str) -> PairOf:
    """The ``barrier[:limit]`` grammar of beancounter ``name`` in its own unit."""
    return PairOf(Size(UNIT_SIZE[BY_NAME[name].unit]))


def add(a: int, b: int) -> int:
    """Sum of two values where either may be unlimited."""
    return UNLIMITED if a >= UNLIMITED or b >= UNLIMITED else min(a + b, UNLIMITED)


def scale(value: int, factor: int) -> int:
    """``value`` in a larger unit (pages to bytes), unlimited staying unlimited."""
    return UNLIMITED if value >= UNLIMITED // max(factor, 1) else value * factor


@attrs.frozen
class Limits:
    """Every beancounter's barrier and limit for one CT.

    :ivar pairs: resource name -> :class:`vzcore.values.Pair` (all 21 names).
    :ivar explicit: the names the config sets itself.
    """

    pairs: Mapping[str, Pair]
    explicit: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> Pair:
        return self.pairs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.pairs)

    @property
    def vswap(self) -> bool:
        """VSwap mode: physpages has a limit (vzlist's ``vswap`` field)."""
        return self.pairs["physpages"].limit < UNLIMITED

    def to_json(self) -> dict[str, list[int]]:
        return {name: [p.barrier, p.limit] for name, p in self.pairs.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        pairs = {r.name: Pair(*data[r.name]) if r.name in data else Pair(UNLIMITED, UNLIMITED)
                 for r in RESOURCES}
        return cls(pairs)


def config_text(get: Getter, name: str) -> tuple[str, str] | None:
    """``(key, text)`` of beancounter ``name`` in a config, old alias keys included."""
    resource = BY_NAME[name]
    for key in (resource.key, *resource.aliases):
        text = get(key)
        if text is not None and text.strip():
            return key, text
    return None


def parse_overcommit(text: str) -> Decimal:
    """``VM_OVERCOMMIT``: a non-negative number (0: privvmpages unlimited in VSwap mode)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r}: expected a number of 0 or more")
    return value


def from_config(ctid: int, get: Getter, host_pages: int) -> Limits:
    """The CT's limits from its config (``get`` reads a key: CT config over vz.conf).

    :raises InvalidValue: naming the CT, the key and the fix, for any malformed value.
    """
    pairs: dict[str, Pair] = {}
    explicit: set[str] = set()
    for resource in RESOURCES:
        found = config_text(get, resource.name)
        if found is None:
            pairs[resource.name] = Pair(*default_pair(resource.name, host_pages))
            continue
        key, text = found
        try:
            pairs[resource.name] = pair_type(resource.name).parse(text)
        except ValueError as exc:
            raise InvalidValue(
                f"CT {ctid}: {key}={text!r} in the config: {exc}; fix it with "
                f"'vzctl set {ctid} --{resource.name} BARRIER[:LIMIT] --save'") from None
        explicit.add(resource.name)
    overcommit = Decimal(0)
    if (ratio := get("VM_OVERCOMMIT")) is not None and ratio.strip():
        try:
            overcommit = parse_overcommit(ratio)
        except ValueError as exc:
            raise InvalidValue(f"CT {ctid}: VM_OVERCOMMIT={ratio!r} in the config: {exc}; fix it "
                               f"with 'vzctl set {ctid} --vm_overcommit N --save'") from None
    _implicit_vswap(pairs, explicit, overcommit)
    return Limits(pairs, frozenset(explicit))


def _implicit_vswap(pairs: dict[str, Pair], explicit: set[str], overcommit: Decimal) -> None:
    ram = pairs["physpages"].limit
    if ram >= UNLIMITED:
        return
    total = add(ram, pairs["swappages"].limit)
    implicit = {
        "lockedpages": Pair(ram, UNLIMITED),
        "oomguarpages": Pair(ram, UNLIMITED),
        "vmguarpages": Pair(total, total),
    }
    if overcommit > 0 and total < UNLIMITED:
        privvm = min(int(total * overcommit), UNLIMITED)
        implicit["privvmpages"] = Pair(privvm, privvm)
    for name, pair in implicit.items():
        if name not in explicit:
            pairs[name] = pair
