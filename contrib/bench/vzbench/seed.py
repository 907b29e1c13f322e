"""The seed experiment: N web CTs (the announcement's process set, each on its own venet
address, serving a 4,300-byte page) against the same server run N times on the host.

Reported per N: boot-all time and time until every CT serves, host memory per running CT
with its breakdown, processes per CT, and aggregate requests/min of wrk across all CTs
and across the host servers, taken in alternating rounds; the ratio is the overhead."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from vzbench import hostweb, lxcweb, memory, web, webcts
from vzbench.common import BIN, RESERVE_MIB, Cleanup, loadavg, log, median, meminfo, run

SETTLE = 5.0
"""Seconds after every server answers before memory is read (boot scripts finishing)."""


def per_ct_starts(stdout: str) -> list[float]:
    """The per-CT seconds of boot-all's progress lines ``CT N started (0.12 s)``."""
    return [float(line.rsplit("(", 1)[1].split()[0]) for line in stdout.splitlines()
            if line.startswith("CT ") and " started (" in line]


HOST_SERVER_MIB = 4.0
"""What one host server (apache2 with eight workers) takes from MemAvailable, rounded up
(3.2 MiB measured with 50 servers)."""
LXC_CONTAINER_MIB = 12.0
"""What one LXC web container takes from MemAvailable, rounded up (10.7 MiB with 50)."""


def measure(count: int, tarball: Path, rounds: int, seconds: int, cleanup: Cleanup,
            with_lxc: bool = True, layout: str = "copy", alone: bool = False) -> dict[str, Any]:
    """The seed experiment at ``count`` CTs in ``layout`` (and as many LXC containers with
    ``with_lxc``).

    Unless ``alone`` is asked for, when the host servers and the LXC containers fit in
    memory beside the running CTs (:data:`HOST_SERVER_MIB`, :data:`LXC_CONTAINER_MIB`,
    keeping :data:`RESERVE_MIB`), the three are loaded in alternating rounds; else one
    after another, each population stopped before the next starts (``result["rounds"]``
    says which)."""
    result: dict[str, Any] = {"cts": count, "template": tarball.name.removesuffix(".tar.zst"),
                              "layout": layout, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                      time.gmtime()),
                              "load_before": loadavg()}
    work = Path(tempfile.mkdtemp(prefix="vzbench-seed-"))
    cleanup.push(f"remove {work}", lambda: run(["rm", "-rf", str(work)]))
    lxc = with_lxc and shutil.which("lxc-start") is not None
    samples: dict[str, list[dict[str, float]]] = {}
    with webcts.population(count, tarball, "vzbench-seed", layout=layout) as (root, env, parent, ctids):
        addresses = [webcts.address(i) for i in range(count)]
        before = meminfo()
        log(f"vzctl boot-all of {count} web CTs")
        started = time.perf_counter()
        out = run([str(BIN / "vzctl"), "boot-all"], env=env).stdout
        result["boot_all_s"] = time.perf_counter() - started
        result["boot_all_median_ct_s"] = median(per_ct_starts(out))
        result["serving_after_s"] = result["boot_all_s"] + web.wait_serving(
            addresses, limit=120 + count * 3)
        log(f"all {count} CTs serve after {result['serving_after_s']:.1f} s; settling")
        time.sleep(SETTLE)
        result["memory"] = memory.breakdown(parent, ctids, before, root)
        loads = {"ct": [f"{a}:80" for a in addresses]}
        need = count * (HOST_SERVER_MIB + (LXC_CONTAINER_MIB if lxc else 0.0))
        together = not alone and need <= available_mib() - RESERVE_MIB
        result["rounds"] = "alternating" if together else "one after another"
        if not together:
            log("each population measured alone" + ("" if alone else
                f": host servers{' and LXC containers' if lxc else ''} need about "
                f"{need / 1024:.1f} GiB beside the CTs"))
            samples.update(load_rounds(loads, rounds, seconds, work))
            result["still_serving"] = count - len(web.silent(addresses))
            loads.clear()
            run([str(BIN / "vzctl"), "stop-all", "--fast"], env=env)
        host = hostweb.HostServers(tarball, work)
        cleanup.push("stop the host servers", host.stop)
        before = meminfo()
        host_targets = host.start(count)
        web.wait_serving([t.split(":")[0] for t in host_targets], limit=60 + count)
        time.sleep(SETTLE)
        result["host_memory"] = host_memory(host, before, count)
        loads["host"] = host_targets
        if not together:
            samples.update(load_rounds(loads, rounds, seconds, work))
            loads.clear()
            host.stop()
        if lxc:
            # (their copies on the population's own file system, see webcts._own_disk)
            lxc_loads = lxc_targets(result, tarball, root / "vz", count, cleanup)
            if lxc_loads:
                loads["lxc"] = lxc_loads
        samples.update(load_rounds(loads, rounds, seconds, work))
        if together:
            result["still_serving"] = count - len(web.silent(addresses))
        host.stop()
        cleanup.close()  # the LXC containers and the work directory too
    result["throughput"] = samples
    ct_rate = median([s["req_s"] for s in samples["ct"]])
    host_rate = median([s["req_s"] for s in samples["host"]])
    if samples.get("lxc"):
        result["lxc_req_min"] = median([s["req_s"] for s in samples["lxc"]]) * 60
        result["lxc_ratio"] = result["lxc_req_min"] / 60 / host_rate if host_rate else None
    result["ct_req_min"] = ct_rate * 60
    result["host_req_min"] = host_rate * 60
    result["ratio"] = ct_rate / host_rate if host_rate else float("nan")
    result["load_after"] = loadavg()
    return result


def load_rounds(loads: dict[str, list[str]], rounds: int, seconds: int,
                work: Path) -> dict[str, list[dict[str, float]]]:
    """``rounds`` wrk runs against each population of ``loads`` (``ADDR:80`` targets),
    alternating the order round by round; each population's samples."""
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in loads}
    for r in range(rounds):
        order = list(loads) if r % 2 == 0 else list(reversed(loads))
        for label in order:
            try:
                figures = web.load(loads[label], work, seconds, label)
            except web.WrkTimeout as exc:  # once more; a second hang fails the size
                log(f"round {r + 1}: {exc}; again")
                figures = web.load(loads[label], work, seconds, label)
            figures["load1"] = loadavg()[0]
            samples[label].append(figures)
            log(f"round {r + 1}: {label} {figures['req_s'] * 60:,.0f} req/min")
    return samples


def available_mib() -> float:
    return meminfo()["MemAvailable"] / 1024


def lxc_targets(result: dict[str, Any], tarball: Path, work: Path, count: int,
                cleanup: Cleanup) -> list[str]:
    """Start ``count`` LXC web containers; their targets (none when they cannot run here:
    the reason goes into ``result``)."""
    room = available_mib() - RESERVE_MIB
    if count * LXC_CONTAINER_MIB > room:
        result["lxc_error"] = (f"not started: {count} containers need about "
                               f"{count * LXC_CONTAINER_MIB / 1024:.1f} GiB, "
                               f"{room / 1024:.1f} GiB is available beyond the reserve")
        log(f"LXC web containers: {result['lxc_error']}")
        return []
    servers = lxcweb.LxcServers(tarball, work)
    cleanup.push("stop the LXC containers", servers.stop)
    before = meminfo()
    try:
        log(f"starting {count} LXC web containers")
        targets = servers.start(count)
        result["lxc_serving_s"] = lxcweb.wait(targets, count)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        result["lxc_error"] = str(exc).splitlines()[0][:400]
        log(f"LXC web containers: {result['lxc_error']}")
        return []
    time.sleep(SETTLE)
    result["lxc_memory"] = lxcweb.measure_memory(servers, before, count)
    return targets


def host_memory(host: hostweb.HostServers, before: dict[str, int], count: int) -> dict[str, float]:
    """Memory per host server: MemAvailable drop and the PSS of its processes."""
    after = meminfo()
    pids = host.pids()
    pss = sum((memory.smaps(pid) or {}).get("Pss", 0) for pid in pids) / 1024
    return {"memavailable_drop_mib_per_server": (before["MemAvailable"] - after["MemAvailable"])
            / 1024 / count, "pss_mib_per_server": pss / count,
            "processes_per_server": len(pids) / count}
