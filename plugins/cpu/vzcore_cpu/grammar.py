"""Value grammars of the CPU options (``--cpulimit N|N%``, ``--cpumask LIST|all``) and
reading a CT's settings from its config text."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

import attrs

from vzcore_cpu.mapping import DEFAULT_UNITS, MAX_UNITS, MIN_UNITS, CpuSettings, format_cpulist, parse_cpulist

MAX_LIMIT = 100 * (8191 + 1)
"""cpulimit at most 100 % of every CPU number the kernel can have."""
MAX_CPUS = 8192
CPU_KEYS = ("CPUUNITS", "CPULIMIT", "CPUS", "CPUMASK")

T = TypeVar("T")


def online_cpus() -> frozenset[int]:
    """The host's online CPUs (``/sys/devices/system/cpu/online``)."""
    try:
        with open("/sys/devices/system/cpu/online") as f:
            cpus = parse_cpulist(f.read())
        if cpus:
            return cpus
    except (OSError, ValueError):
        pass
    return frozenset(range(os.cpu_count() or 1))


def host_cpu_count() -> int:
    return len(online_cpus())


@attrs.frozen
class CpuLimit:
    """``N`` (percent of one CPU; 200 = two CPUs; 0 = no limit) or ``N%`` (percent of the
    whole host, N <= 100), stored as percent of one CPU, as vzctl stores it."""

    host_cpus: Callable[[], int] = attrs.field(default=host_cpu_count, eq=False)
    metavar: str = "N|N%"

    def parse(self, text: str) -> int:
        match = re.fullmatch(r"(\d+)(%?)", text.strip())
        if not match:
            raise ValueError(f"{text!r}: expected N (percent of one CPU, 100 = one CPU, 0 = no "
                             "limit) or N% (percent of the whole host)")
        number = int(match.group(1))
        if match.group(2):
            if number > 100:
                raise ValueError(f"{text!r}: N% is a share of the whole host, at most 100%")
            return number * self.host_cpus()
        if number > MAX_LIMIT:
            raise ValueError(f"{number} is above {MAX_LIMIT} (100 % of {MAX_LIMIT // 100} CPUs)")
        return number

    def to_conf(self, value: int) -> str:
        return str(value)


@attrs.frozen
class CpuMask:
    """A CPU list (``0-2,7``) or ``all``; ``None`` stands for all."""

    metavar: str = "LIST|all"

    def parse(self, text: str) -> frozenset[int] | None:
        if text.strip() == "all":
            return None
        cpus = parse_cpulist(text)
        if not cpus:
            raise ValueError("an empty CPU list leaves the CT no CPU; give a list or 'all'")
        return cpus

    def to_conf(self, value: frozenset[int] | None) -> str:
        return "all" if value is None else format_cpulist(value)


class SettingError(ValueError):
    """A CPU key in a config holds text its grammar refuses."""

    def __init__(self, key: str, text: str, reason: str) -> None:
        super().__init__(f"{key}={text!r}: {reason}")
        self.key = key


def _parsed(get: Callable[[str], str | None], key: str, grammar: Callable[[str], T]) -> T | None:
    text = get(key)
    if text is None or not text.strip():
        return None
    try:
        return grammar(text)
    except ValueError as exc:
        raise SettingError(key, text, str(exc)) from None


def settings_of(get: Callable[[str], str | None], *,
                host_cpus: Callable[[], int] = host_cpu_count) -> CpuSettings:
    """A CT's settings from config text (``get(key)``; ``None``: unset, the default).

    :raises SettingError: naming the key whose text is malformed.
    """
    units = _parsed(get, "CPUUNITS", _units)
    limit = _parsed(get, "CPULIMIT", CpuLimit(host_cpus).parse)
    cpus = _parsed(get, "CPUS", _cpus)
    mask = _parsed(get, "CPUMASK", CpuMask().parse)
    return CpuSettings(units=DEFAULT_UNITS if units is None else units, limit=limit or 0,
                       cpus=cpus or 0, mask=mask)


def _whole(text: str, low: int, high: int) -> int:
    try:
        number = int(text.strip(), 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not low <= number <= high:
        raise ValueError(f"{number} is outside {low}..{high}")
    return number


def _units(text: str) -> int:
    return _whole(text, MIN_UNITS, MAX_UNITS)


def _cpus(text: str) -> int:
    return _whole(text, 0, MAX_CPUS)


def host_units(text: str | None) -> int:
    """VE0CPUUNITS text as a number (default 1000); ValueError when malformed."""
    return DEFAULT_UNITS if text is None or not text.strip() else _units(text)


def texts_of(settings: CpuSettings) -> dict[str, str]:
    """``settings`` as the config texts :func:`settings_of` reads back."""
    return {"CPUUNITS": str(settings.units), "CPULIMIT": str(settings.limit),
            "CPUS": str(settings.cpus), "CPUMASK": CpuMask().to_conf(settings.mask)}
