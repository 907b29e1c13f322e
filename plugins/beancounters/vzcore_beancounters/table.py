"""Beancounter rows: counters and settings together, as ``/proc/user_beancounters`` text or
JSON (reference §5.1).

A row is what OpenVZ shows: held, maxheld, barrier, limit, failcnt.  For a stopped CT the
live columns are 0 (vzlist's JSON does the same); ``maxheld`` of a resource whose kernel
counter keeps no peak is the highest value any reader saw (:mod:`.peaks`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from vzcore_beancounters import peaks
from vzcore_beancounters.counters import Usage
from vzcore_beancounters.limits import Limits
from vzcore_beancounters.resources import DUMMY, RESOURCES, ROWS, UNLIMITED

VERSION_LINE = "Version: 2.5"
_FORMAT = "{:>10}  {:<12} {:>20} {:>20} {:>20} {:>20} {:>20}"
HEADER_LINE = _FORMAT.format("uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt")


@attrs.frozen
class Row:
    """One beancounter of one CT."""

    held: int
    maxheld: int
    barrier: int
    limit: int
    failcnt: int

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


def rows(limits: Limits, usage: Mapping[str, Usage] | None,
         observed: Mapping[str, int] | None = None) -> dict[str, Row]:
    """Every beancounter's row; ``usage`` ``None`` for a stopped CT."""
    result = {}
    for resource in RESOURCES:
        pair = limits[resource.name]
        if usage is None:
            result[resource.name] = Row(0, 0, pair.barrier, pair.limit, 0)
            continue
        u = usage[resource.name]
        peak = max(u.held, u.maxheld or 0, (observed or {}).get(resource.name, 0))
        result[resource.name] = Row(u.held, peak, pair.barrier, pair.limit, u.failcnt)
    return result


def running_rows(limits: Limits, usage: Mapping[str, Usage], peaks_file: Path,
                 wanted: Collection[str] | None = None) -> dict[str, Row]:
    """Rows of a running CT, with the observed peaks of the ``wanted`` beancounters (all by
    default: the others were not read) raised to this reading."""
    held = {name: u.held for name, u in usage.items() if wanted is None or name in wanted}
    return rows(limits, usage, peaks.merge(peaks_file, held))


def _number(value: int) -> int:
    return min(max(value, 0), UNLIMITED)


def proc_text(blocks: Iterable[tuple[int, Mapping[str, Row]]]) -> str:
    """``/proc/user_beancounters``: the version line, the header, then per CT the 24 rows
    in the kernel's order (dummy rows show 0 and unlimited), ``CTID:`` on the first."""
    lines = [VERSION_LINE, HEADER_LINE]
    for ctid, table in blocks:
        for index, name in enumerate(ROWS):
            row = table[name] if name != DUMMY else Row(0, 0, UNLIMITED, UNLIMITED, 0)
            lines.append(_FORMAT.format(
                f"{ctid}:" if index == 0 else "", name, *(_number(v) for v in (
                    row.held, row.maxheld, row.barrier, row.limit, row.failcnt))))
    return "\n".join(lines) + "\n"


def proc_size(ctid: int) -> int:
    """The length of :func:`proc_text` for one CT: every column has a fixed width (no
    value has more than 19 digits), so it depends on the CT ID alone."""
    zeros = {r.name: Row(0, 0, 0, 0, 0) for r in RESOURCES}
    return len(proc_text([(ctid, zeros)]).encode())


def as_json(blocks: Iterable[tuple[int, Mapping[str, Row]]]) -> str:
    """The same as a JSON array of ``{"ctid": N, "<resource>": {held, maxheld, barrier,
    limit, failcnt}, ...}`` objects (swappages included)."""
    data: list[dict[str, Any]] = []
    for ctid, table in blocks:
        data.append({"ctid": ctid, **{name: row.as_dict() for name, row in table.items()}})
    return json.dumps(data, indent=2)
