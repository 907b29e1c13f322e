"""Density: web CTs started one by one (``vzctl start``, each timed) while every running CT
must still answer within 1 s; the largest population that did, and the start time of the
n-th CT as the population grows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from population import FIRST
from vzbench import web, webcts
from vzbench.common import RESERVE_MIB, log, meminfo, vzctl


def checkpoints(limit: int) -> list[int]:
    """Populations after which every CT is probed: 1, 5, 10, then every 10 up to 100,
    every 50 beyond, and ``limit``."""
    marks = {1, 5, *range(10, 101, 10), *range(150, limit + 1, 50)}
    return sorted({m for m in marks if m <= limit} | {limit})


def measure(limit: int, budget: float, tarball: Path, layout: str = "copy") -> dict[str, Any]:
    """Grow to ``limit`` CTs (in ``layout``) or until ``budget`` seconds pass, a probe fails
    or memory is short."""
    starts: list[float] = []
    probes: list[dict[str, Any]] = []
    stopped_by = f"reached the limit of {limit} CTs set for this run"
    began = time.monotonic()
    name = tarball.name.removesuffix(".tar.zst")
    with webcts.population(1, tarball, "vzbench-density", room=limit,
                           layout=layout) as (root, env, _parent, _ctids):
        marks = set(checkpoints(limit))
        addresses: list[str] = []
        for n in range(1, limit + 1):
            ctid = FIRST + n - 1
            if n > 1:  # made as the population grows, outside the timed start
                webcts.add(root, env, name, ctid, webcts.address(n - 1), layout)
            starts.append(vzctl(env, "start", ctid))
            addresses.append(webcts.address(n - 1))
            if n not in marks:
                continue
            web.wait_serving(addresses[-10:], limit=120)  # the newest have booted
            silent = web.silent(addresses, timeout=1.0)
            probes.append({"running": n, "silent": len(silent), "load1": _load1(),
                           "memavailable_mib": meminfo()["MemAvailable"] / 1024})
            log(f"density: {n} running, {len(silent)} not answering within 1 s")
            if silent:
                stopped_by = f"{len(silent)} of {n} CTs did not answer within 1 s"
                break
            if time.monotonic() - began > budget:
                stopped_by = f"the time budget of {budget:.0f} s for this run"
                break
            if meminfo()["MemAvailable"] / 1024 < RESERVE_MIB:
                stopped_by = f"MemAvailable below {RESERVE_MIB} MiB"
                break
    answering = [p["running"] for p in probes if p["silent"] == 0]
    return {"start_s": starts, "probes": probes, "largest_answering": max(answering, default=0),
            "stopped_by": stopped_by, "flatness": flatness(starts)}


def flatness(starts: list[float]) -> dict[str, float]:
    """Median start of the first and the last tenth of the CTs, and their ratio (the target
    is flat within 20 % from 10 to 1,000 CTs)."""
    if len(starts) < 10:
        return {}
    tenth = max(len(starts) // 10, 1)
    first = sorted(starts[:tenth])[tenth // 2]
    last = sorted(starts[-tenth:])[tenth // 2]
    return {"first_tenth_median_s": first, "last_tenth_median_s": last, "ratio": last / first}


def _load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
