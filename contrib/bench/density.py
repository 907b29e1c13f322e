"""Density: how much host memory and start time each running CT costs, up to thousands.

Run as root from the repository (it re-executes itself in a new network namespace, so no
host interface is touched):

    .venv/bin/python contrib/bench/density.py [--cts 1000] [--plot docs/bench/density.svg]

CTs are busybox CTs with every installed plugin active and one venet address each, set
up as copies of CT 101 (``population.py``), started one after another and kept running.
At checkpoints the benchmark records what the running CTs cost the host:

* ``MemAvailable`` of /proc/meminfo against the value before the first start (all memory
  the CTs, their kernel objects and vzcore's helper processes take, page cache included);
* the memory cgroup charge of the whole population (the CTs' processes and the kernel
  memory charged to them);
* the ``Slab`` and ``KernelStack`` of /proc/meminfo (namespaces, devices, routes, cgroups);
* vzcore's own host-side processes per CT (vzctl leaves none; the beancounters view daemon
  is one per host).

and, with all CTs running, the wall time of ``vzctl exec`` into the last CT, of ``vzlist``
and ``vzlist -j`` over all of them, and of ``vzctl stop --fast``.  Every start's wall time
is kept: the plot shows it against the number of CTs already running, so a cost that
grows with the population shows as a slope.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from population import FIRST, address, clone, installation, reexec_in_netns, vzctl, vzlist


def meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB."""
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, rest = line.split(":", 1)
            values[name] = int(rest.split()[0])
    return values


def population_charge(parent: str) -> int:
    """Bytes charged to the memory cgroup that holds every CT of the run."""
    from vzcore.linux import cgroups

    for hierarchy in cgroups.hierarchies():
        if "memory" in hierarchy.controllers:
            directory = hierarchy.directory(cgroups.resolve_parent(parent, hierarchy))
            name = "memory.usage_in_bytes" if hierarchy.version == 1 else "memory.current"
            try:
                return int((directory / name).read_text())
            except FileNotFoundError:  # made by the first start
                return 0
    return 0


def host_processes(root: Path) -> int:
    """Host processes of this run: those whose command line names its ``VZ_ROOT`` (the view
    daemon) or whose environment has it (vzctl, and whatever vzctl left running)."""
    name, setting = str(root).encode(), b"VZ_ROOT=" + str(root).encode() + b"\0"
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            count += name in cmdline or setting in environ
    return count


def checkpoint(running: int, base: dict[str, int], parent: str, root: Path) -> dict[str, float]:
    info = meminfo()
    used = base["MemAvailable"] - info["MemAvailable"]
    point = {"running": running, "host_mib": used / 1024,
             "charge_mib": population_charge(parent) / 2**20,
             "slab_mib": (info["Slab"] - base["Slab"]) / 1024,
             "kernel_stack_mib": (info["KernelStack"] - base["KernelStack"]) / 1024,
             "host_helpers": host_processes(root)}
    per_ct = f", {used / running:.0f} KiB per CT" if running else ""
    print(f"  {running:5} running: host memory +{point['host_mib']:.1f} MiB{per_ct}, "
          f"charged to the CTs {point['charge_mib']:.1f} MiB, slab +{point['slab_mib']:.1f} MiB",
          flush=True)
    return point


def checkpoints_up_to(count: int) -> list[int]:
    marks = {n for n in (1, 10, 100, 250, 500, 1000, 2000, 5000) if n <= count}
    return sorted(marks | {count})


def run(count: int, output: Path | None, plot: Path | None) -> None:
    with installation("vzbench-density") as (root, env, parent):
        vzctl(env, "create", FIRST, "--ostemplate", "busybox", "--ipadd", address(0))
        print(f"setting up {count} CTs ...", flush=True)
        for i in range(1, count):
            clone(root, FIRST, FIRST + i, address(i))
        time.sleep(2)  # let the page cache of the copies settle before the baseline
        base = meminfo()
        points = [checkpoint(0, base, parent, root)]
        starts: list[float] = []
        for mark in checkpoints_up_to(count):
            while len(starts) < mark:
                starts.append(vzctl(env, "start", FIRST + len(starts)))
            points.append(checkpoint(mark, base, parent, root))
        last = FIRST + count - 1
        timings = {
            "exec_last_s": vzctl(env, "exec", last, "true"),
            "vzlist_s": vzlist(env),
            "vzlist_json_s": vzlist(env, "-j"),
        }
        stops = [vzctl(env, "stop", "--fast", FIRST + i) for i in reversed(range(count))]
        results = {"cts": count, "starts_s": starts, "stops_s": stops, "points": points,
                   "timings": timings}
    _report(results)
    if output:
        output.write_text(json.dumps(results, indent=1) + "\n")
    if plot:
        from svgplot import scatter_plot

        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(scatter_plot(
            f"vzctl start of the n-th busybox CT (venet, all plugins), {count} CTs",
            "CTs already running", "wall time of vzctl start (ms)",
            [(i, s * 1000) for i, s in enumerate(starts)]))


def _report(results: dict[str, Any]) -> None:
    starts, stops, points = results["starts_s"], results["stops_s"], results["points"]
    last = points[-1]
    n = results["cts"]
    print()
    print(f"{n} CTs running: host memory +{last['host_mib']:.0f} MiB "
          f"({last['host_mib'] * 1024 / n:.0f} KiB per CT), charged to the CTs "
          f"{last['charge_mib']:.0f} MiB, slab +{last['slab_mib']:.0f} MiB, kernel stacks "
          f"+{last['kernel_stack_mib']:.0f} MiB, vzcore host processes: {last['host_helpers']}")
    for lo, hi in sorted({(0, min(n, 100)), (max(0, n - 100), n)}):
        print(f"vzctl start of CTs {lo + 1}-{hi}: median {statistics.median(starts[lo:hi]) * 1000:.0f} ms")
    print(f"vzctl stop --fast: median {statistics.median(stops) * 1000:.0f} ms")
    t = results["timings"]
    print(f"with all running: vzctl exec {t['exec_last_s'] * 1000:.0f} ms, vzlist "
          f"{t['vzlist_s'] * 1000:.0f} ms, vzlist -j {t['vzlist_json_s'] * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cts", type=int, default=1000, help="CTs to start (default 1000)")
    parser.add_argument("--output", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument("--plot", type=Path, help="write an SVG of start time against CTs running")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    reexec_in_netns()
    run(args.cts, args.output, args.plot)


if __name__ == "__main__":
    main()
