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
from vzbench.common import BIN, Cleanup, log, median, meminfo, run

SETTLE = 5.0
"""Seconds after every server answers before memory is read (boot scripts finishing)."""


def per_ct_starts(stdout: str) -> list[float]:
    """The per-CT seconds of boot-all's progress lines ``CT N started (0.12 s)``."""
    return [float(line.rsplit("(", 1)[1].split()[0]) for line in stdout.splitlines()
            if line.startswith("CT ") and " started (" in line]


def measure(count: int, tarball: Path, rounds: int, seconds: int, cleanup: Cleanup,
            with_lxc: bool = True, layout: str = "copy") -> dict[str, Any]:
    """The seed experiment at ``count`` CTs in ``layout`` (and as many LXC containers with
    ``with_lxc``)."""
    result: dict[str, Any] = {"cts": count, "template": tarball.name.removesuffix(".tar.zst"),
                              "layout": layout}
    work = Path(tempfile.mkdtemp(prefix="vzbench-seed-"))
    cleanup.push(f"remove {work}", lambda: run(["rm", "-rf", str(work)]))
    with webcts.population(count, tarball, "vzbench-seed", layout=layout) as (root, env, parent, ctids):
        targets = [f"{webcts.address(i)}:80" for i in range(count)]
        before = meminfo()
        log(f"vzctl boot-all of {count} web CTs")
        started = time.perf_counter()
        out = run([str(BIN / "vzctl"), "boot-all"], env=env).stdout
        result["boot_all_s"] = time.perf_counter() - started
        starts = per_ct_starts(out)
        result["boot_all_median_ct_s"] = median(starts)
        result["serving_after_s"] = result["boot_all_s"] + web.wait_serving(
            [t.split(":")[0] for t in targets], limit=120 + count * 3)
        log(f"all {count} CTs serve after {result['serving_after_s']:.1f} s; settling")
        time.sleep(SETTLE)
        result["memory"] = memory.breakdown(parent, ctids, before, root)

        host = hostweb.HostServers(tarball, work)
        cleanup.push("stop the host servers", host.stop)
        before = meminfo()
        host_targets = host.start(count)
        web.wait_serving([t.split(":")[0] for t in host_targets], limit=60 + count)
        time.sleep(SETTLE)
        result["host_memory"] = host_memory(host, before, count)

        loads = {"ct": targets, "host": host_targets}
        if with_lxc and shutil.which("lxc-start"):
            # (their copies on the population's own file system, see webcts._own_disk)
            lxc = lxc_targets(result, tarball, root / "vz", count, cleanup)
            if lxc:
                loads["lxc"] = lxc
        samples: dict[str, list[dict[str, float]]] = {label: [] for label in loads}
        for r in range(rounds):
            order = list(loads) if r % 2 == 0 else list(reversed(loads))
            for label in order:
                figures = web.load(loads[label], work, seconds, label)
                figures["load1"] = float(Path("/proc/loadavg").read_text().split()[0])
                samples[label].append(figures)
                log(f"round {r + 1}: {label} {figures['req_s'] * 60:,.0f} req/min")
        result["still_serving"] = count - len(web.silent([t.split(":")[0] for t in targets]))
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
    return result


def lxc_targets(result: dict[str, Any], tarball: Path, work: Path, count: int,
                cleanup: Cleanup) -> list[str]:
    """Start ``count`` LXC web containers; their targets (none when they cannot run here:
    the reason goes into ``result``)."""
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
