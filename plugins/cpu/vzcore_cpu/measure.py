"""Measuring what running CTs get of the CPU, from their own cgroup counters.

Used by the plugin's tests and by ``contrib/bench/cpu_fairness.py``: both start busy
loops in CTs with ``vzctl exec`` and read the CPU time each CT's group accounted
(``cpuacct.usage`` on v1, ``cpu.stat`` usage_usec on v2) at the start and end of a window.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from vzcore.errors import VzError
from vzcore.paths import Paths
from vzcore_cpu.apply import usage_seconds

BUSY_LOOP = "while :; do :; done </dev/null >/dev/null 2>&1 &"
"""A shell busy loop that keeps running after ``vzctl exec`` returns."""


def busy_loops(count: int) -> str:
    """A ``vzctl exec`` command line that starts ``count`` busy loops in the CT."""
    return " ".join([BUSY_LOOP] * count)


def cpu_seconds(paths: Paths, ctid: int) -> float:
    """The CPU time CT ``ctid`` has used since it started, from its cgroup counter."""
    from vzcore.runtime import State

    state = State.load(paths.state_file(ctid), ctid)
    if state is None or state.cgroups is None:
        raise VzError(f"CT {ctid} is not running")
    seconds = usage_seconds(state.cgroups)
    if seconds is None:
        raise VzError(f"CT {ctid}: this host does not account CPU time per cgroup")
    return seconds


def cpus_used(paths: Paths, ctids: Iterable[int], seconds: float) -> dict[int, float]:
    """How many CPUs each CT used on average over the next ``seconds`` (1.0 = one CPU)."""
    ctids = list(ctids)
    before = {ctid: cpu_seconds(paths, ctid) for ctid in ctids}
    start = time.monotonic()
    time.sleep(seconds)
    after = {ctid: cpu_seconds(paths, ctid) for ctid in ctids}
    elapsed = time.monotonic() - start
    return {ctid: (after[ctid] - before[ctid]) / elapsed for ctid in ctids}
