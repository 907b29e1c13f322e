#!/usr/bin/env python3
"""Re-measure the cpu plugin's acceptance figures on this host (run as root).

    .venv/bin/python contrib/bench/cpu_fairness.py [--window 10] [--repeat 3] [--host-cpuunits N]

It makes a private vzcore installation in a temporary directory (its own VZ_ROOT and
CGROUP_PARENT), creates busybox CTs with the real ``vzctl``, starts shell busy loops in
them, and reads the CPU time each CT's cgroup accounted (``cpuacct.usage`` on cgroup v1,
``cpu.stat`` usage_usec on v2) over each window.  It prints, per scenario, the target, the
median, minimum and maximum of ``--repeat`` windows, and whether the median is within the
tolerance:

* two CTs on CPU 0 (``--cpumask 0``), cpuunits 1000 and 3000: CPU time ratio 3.0 +-15 %;
* the same after ``vzctl set --cpuunits 1000`` on the running second CT, measured over
  the first second after the command: 1.0 +-15 %;
* one CT with ``--cpulimit 25``, one busy loop: 25 % of one CPU +-5 points;
* the same after ``vzctl set --cpulimit 60``, first second: 60 % +-5 points;
* one CT with ``--cpulimit 150``, three busy loops: 1.5 CPUs +-10 % (needs 2 CPUs).

Other work on the host competes with the CTs; ``--host-cpuunits`` sets the host's own
weight (``vzctl set 0 --cpuunits N``, default 1000 as on a fresh OpenVZ host; 8 favours
the CTs as far as OpenVZ allows).  The load average is printed to judge the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from population import remove_cgroup_parent

from vzcore.paths import Paths
from vzcore_cpu.grammar import online_cpus
from vzcore_cpu.measure import busy_loops, cpus_used

VZCTL = str(Path(sys.executable).with_name("vzctl"))


class Bench:
    """A private vzcore installation and the CTs made in it."""

    def __init__(self, root: Path, host_cpuunits: int) -> None:
        self.root = root
        self.paths = Paths(root)
        self.parent = f"vzbench-cpu-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "VZ_ROOT": str(root)}
        conf = root / "etc/vz/vz.conf"
        conf.parent.mkdir(parents=True)
        conf.write_text(f'CGROUP_PARENT="{self.parent}"\nSTOP_TIMEOUT="10"\n'
                        f'VE0CPUUNITS="{host_cpuunits}"\n')
        self.made: list[int] = []

    def vzctl(self, *args: object) -> None:
        subprocess.run([VZCTL, "--quiet", *(str(a) for a in args)], env=self.env, check=True)

    def ct(self, ctid: int, *options: object, loops: int = 1) -> int:
        """Create and start CT ``ctid`` with ``options`` saved, running ``loops`` busy loops."""
        self.vzctl("create", ctid, "--ostemplate", "busybox")
        self.made.append(ctid)
        if options:
            self.vzctl("set", ctid, *options, "--save")
        self.vzctl("start", ctid)
        self.vzctl("exec", ctid, busy_loops(loops))
        return ctid

    def drop(self) -> None:
        for ctid in self.made:
            subprocess.run([VZCTL, "--quiet", "stop", "--fast", str(ctid)], env=self.env, check=False)
            subprocess.run([VZCTL, "--quiet", "destroy", str(ctid)], env=self.env, check=False)
        self.made.clear()

    def remove_parent_groups(self) -> None:
        remove_cgroup_parent(self.parent)


def measure(repeat: int, one: Callable[[], float]) -> list[float]:
    return [one() for _ in range(repeat)]


def row(name: str, target: float, tolerance: str, values: list[float], ok: Callable[[float], bool],
        unit: str) -> None:
    median = statistics.median(values)
    print(f"{name:<44} {target:>7.2f}{unit:<2} {tolerance:<9} {median:>8.3f} {min(values):>8.3f} "
          f"{max(values):>8.3f}  {'yes' if ok(median) else 'NO'}", flush=True)


def run(bench: Bench, window: float, repeat: int) -> None:
    soon = min(1.0, window)
    print(f"{'scenario':<44} {'target':>9} {'tol.':<9} {'median':>8} {'min':>8} {'max':>8}  within")
    a = bench.ct(101, "--cpumask", "0", "--cpuunits", "1000")
    b = bench.ct(102, "--cpumask", "0", "--cpuunits", "3000")

    def ratio(seconds: float) -> float:
        used = cpus_used(bench.paths, (a, b), seconds)
        return used[b] / used[a]

    row("cpuunits 3000:1000 on one CPU (time ratio)", 3.0, "+-15%", measure(repeat, lambda: ratio(window)),
        lambda m: abs(m / 3.0 - 1) <= 0.15, "")

    def live_ratio() -> float:
        bench.vzctl("set", b, "--cpuunits", "3000")
        time.sleep(soon)  # settle at 1:3 before the change
        bench.vzctl("set", b, "--cpuunits", "1000")
        return ratio(soon)

    row("  live set to 1000:1000, first second", 1.0, "+-15%", measure(repeat, live_ratio),
        lambda m: abs(m - 1) <= 0.15, "")
    bench.drop()

    c = bench.ct(103, "--cpulimit", "25")

    def percent(seconds: float) -> float:
        return 100 * cpus_used(bench.paths, [c], seconds)[c]

    row("cpulimit 25, one loop (% of one CPU)", 25, "+-5 pts", measure(repeat, lambda: percent(window)),
        lambda m: abs(m - 25) <= 5, "%")

    def live_percent() -> float:
        bench.vzctl("set", c, "--cpulimit", "25")
        time.sleep(soon)
        bench.vzctl("set", c, "--cpulimit", "60")
        return percent(soon)

    row("  live set to cpulimit 60, first second", 60, "+-5 pts", measure(repeat, live_percent),
        lambda m: abs(m - 60) <= 5, "%")
    bench.drop()

    if len(online_cpus()) < 2:
        print("cpulimit 150: skipped, this host has one CPU")
        return
    d = bench.ct(104, "--cpulimit", "150", loops=3)
    row("cpulimit 150, three loops (CPUs)", 1.5, "+-10%",
        measure(repeat, lambda: cpus_used(bench.paths, [d], window)[d]),
        lambda m: abs(m / 1.5 - 1) <= 0.10, "")
    bench.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per scenario")
    parser.add_argument("--host-cpuunits", type=int, default=1000,
                        help="the host's own cpuunits (VE0CPUUNITS) during the run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    from vzcore.linux import cgroups

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"host: {len(online_cpus())} CPUs, cgroup mode {cgroups.mode()}, load average {load}, "
          f"VE0CPUUNITS={args.host_cpuunits}, window {args.window:g} s x {args.repeat}")
    root = Path(tempfile.mkdtemp(prefix="vzbench-cpu-"))
    bench = Bench(root, args.host_cpuunits)
    try:
        run(bench, args.window, args.repeat)
    finally:
        bench.drop()
        bench.remove_parent_groups()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
