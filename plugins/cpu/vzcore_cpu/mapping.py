"""Pure translation of OpenVZ's CPU parameters into cgroup settings (no I/O).

=============  ====================================  ==========================================
parameter      cgroup v1 (cpu, cpuset)               cgroup v2 (cpu, cpuset)
=============  ====================================  ==========================================
cpuunits U     ``cpu.shares`` = U x 1024 / 1000      ``cpu.weight`` = U / 10
cpulimit L     ``cpu.cfs_quota_us`` = P x L / 100    ``cpu.max`` = ``"P x L / 100  P"``
cpus N         quota capped at N x 100 %; without a cpumask, ``cpuset.cpus`` = N of the CPUs
cpumask M      ``cpuset.cpus`` = M (``all``: the parent's CPUs)
VE0CPUUNITS H  the CTs' parent group weighs (sum of the running CTs' weights) x 1000 / H
=============  ====================================  ==========================================

P is the CFS period, 100 ms.  The weights are libvzctl's (OpenVZ 7): cpuunits 1000, the
default, is the kernel's default weight (1024 shares, weight 100), so a CT with default
units weighs exactly as much as any other group or nice-0 task at its level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

DEFAULT_UNITS = 1000
MIN_UNITS, MAX_UNITS = 8, 500000
CFS_PERIOD_US = 100_000
MIN_QUOTA_US = 1000
"""The kernel refuses a CFS quota below 1 ms."""
SHARES_RANGE = (2, 262144)
WEIGHT_RANGE = (1, 10000)
MAX_CPU_ID = 8191
"""CPU numbers above this are refused in lists (NR_CPUS of distribution kernels)."""


@attrs.frozen
class CpuSettings:
    """A CT's CPU settings, as numbers.

    :ivar units: cpuunits, the relative weight (8..500000; default 1000).
    :ivar limit: cpulimit in percent of one CPU (100 = one full CPU); 0: no limit.
    :ivar cpus: how many CPUs the CT may use; 0: all.
    :ivar mask: the CPUs the CT may run on; ``None``: all of its parent's.
    """

    units: int = DEFAULT_UNITS
    limit: int = 0
    cpus: int = 0
    mask: frozenset[int] | None = None

    def to_record(self) -> dict[str, Any]:
        """JSON for the state file (what was applied to the running CT)."""
        return {"units": self.units, "limit": self.limit, "cpus": self.cpus,
                "mask": None if self.mask is None else format_cpulist(self.mask)}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> CpuSettings:
        mask = data.get("mask")
        return cls(int(data["units"]), int(data["limit"]), int(data["cpus"]),
                   None if mask is None else parse_cpulist(mask))


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))


def shares(units: int) -> int:
    """cgroup v1 ``cpu.shares`` of ``units`` cpuunits (1000 -> 1024)."""
    return _clamp(units * 1024 // 1000, SHARES_RANGE)


def weight(units: int) -> int:
    """cgroup v2 ``cpu.weight`` of ``units`` cpuunits (1000 -> 100)."""
    return _clamp(units // 10, WEIGHT_RANGE)


def weight_file(version: int) -> str:
    """The file that holds a group's relative weight."""
    return "cpu.shares" if version == 1 else "cpu.weight"


def weight_of(units: int, version: int) -> int:
    return shares(units) if version == 1 else weight(units)


def effective_limit(settings: CpuSettings) -> int:
    """The hard limit in percent of one CPU: cpulimit, capped at cpus x 100 (0: none)."""
    caps = [c for c in (settings.limit, settings.cpus * 100) if c > 0]
    return min(caps) if caps else 0


def quota_us(settings: CpuSettings, period: int = CFS_PERIOD_US) -> int | None:
    """CFS quota per ``period`` microseconds, or ``None`` for no limit."""
    limit = effective_limit(settings)
    if not limit:
        return None
    return max(MIN_QUOTA_US, period * limit // 100)


def cpu_files(settings: CpuSettings, version: int) -> list[tuple[str, str]]:
    """The cpu controller's files and values for ``settings``, in the order to write them."""
    quota = quota_us(settings)
    if version == 1:
        return [("cpu.shares", str(shares(settings.units))),
                ("cpu.cfs_period_us", str(CFS_PERIOD_US)),
                ("cpu.cfs_quota_us", str(-1 if quota is None else quota))]
    return [("cpu.weight", str(weight(settings.units))),
            ("cpu.max", f"{'max' if quota is None else quota} {CFS_PERIOD_US}")]


def chosen_cpus(settings: CpuSettings, available: Sequence[int], ctid: int) -> frozenset[int] | None:
    """The CPUs the CT's cpuset gets; ``None``: all of its parent's.

    An explicit cpumask wins.  Otherwise ``cpus`` N below the number of available CPUs
    picks N of them, so that ``nproc`` in the CT says N: consecutive ones (wrapping)
    starting at ``ctid`` modulo their number, which spreads CTs over the host instead of
    stacking every one on CPU 0.
    """
    if settings.mask is not None:
        return settings.mask
    if not settings.cpus or settings.cpus >= len(available):
        return None
    ordered = sorted(available)
    start = ctid % len(ordered)
    return frozenset(ordered[(start + i) % len(ordered)] for i in range(settings.cpus))


def parent_weight(child_weights: Iterable[int], host_units: int, version: int) -> int | None:
    """The weight of the CTs' parent group, so the host counts as ``host_units`` cpuunits.

    The parent competes with the host at its level; giving it the sum of its children's
    weights scaled by 1000 / ``host_units`` makes the running CTs together weigh
    (sum of their cpuunits) against the host's VE0CPUUNITS, where the host is one
    competitor of the kernel's default weight (a nice-0 task, or a sibling group such as
    ``system.slice``).  ``None`` when no CT runs (nothing to balance).
    """
    weights = list(child_weights)
    if not weights:
        return None
    scaled = round(sum(weights) * DEFAULT_UNITS / host_units)
    return _clamp(scaled, SHARES_RANGE if version == 1 else WEIGHT_RANGE)


# -- CPU lists ------------------------------------------------------------------------


def parse_cpulist(text: str) -> frozenset[int]:
    """A kernel CPU list (``0-2,7``) as a set; ValueError says what is accepted."""
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return frozenset()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{text!r} is not a CPU list such as 0-2,7")
        low, high = int(first), int(last) if dash else int(first)
        if low > high:
            raise ValueError(f"{part.strip()!r}: a range goes from the lower CPU to the higher")
        if high > MAX_CPU_ID:
            raise ValueError(f"CPU {high} is above the largest CPU number {MAX_CPU_ID}")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """The kernel's compact form of a CPU set: ``{0, 1, 2, 7}`` -> ``0-2,7``."""
    parts: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


# -- what a CT sees and what vzlist shows ------------------------------------------------


def filter_cpuinfo(text: str, cpus: Iterable[int]) -> str:
    """``/proc/cpuinfo`` with only the entries of ``cpus`` (their own numbers kept, so
    they match ``taskset`` and ``/sys/devices/system/cpu/online``).  Text without
    ``processor`` entries (s390 and friends) is returned as it is."""
    wanted = set(cpus)
    blocks = [b for b in text.split("\n\n") if b.strip()]
    kept: list[str] = []
    found = False
    for block in blocks:
        number = _processor_of(block)
        if number is None:
            kept.append(block)
            continue
        found = True
        if number in wanted:
            kept.append(block)
    if not found:
        return text
    return "".join(block + "\n\n" for block in kept)


def _processor_of(block: str) -> int | None:
    for line in block.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() == "processor" and value.strip().isdigit():
            return int(value)
    return None


def parse_pressure(text: str) -> tuple[float, float, float] | None:
    """The ``some avg10 avg60 avg300`` percentages of a PSI file (``cpu.pressure``)."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "some":
            values = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            try:
                return (float(values["avg10"]), float(values["avg60"]), float(values["avg300"]))
            except (KeyError, ValueError):
                return None
    return None


def usage_seconds(text: str, version: int) -> float | None:
    """CPU time from ``cpuacct.usage`` (v1, nanoseconds) or ``cpu.stat`` (v2, usage_usec)."""
    if version == 1:
        try:
            return int(text.strip()) / 1e9
        except ValueError:
            return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return None
