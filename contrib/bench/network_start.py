"""Per-CT cost of ``vzctl start`` with one venet address, as the number of running CTs grows.

Run as root from the repository (it re-executes itself in a new network namespace, so no
host interface is touched):

    .venv/bin/python contrib/bench/network_start.py [--counts 10,100,500] [--rounds 15]

A population of CTs, each with one venet address (10.200.x.y), is started one after
another and kept running.  When 10, 100 and 500 of them run, two probe CTs are started
and stopped (``--fast``) in turn, ``--rounds`` times: one with a venet address and one
without network settings.  Printed: the median wall time of the real ``vzctl start``
and ``vzctl stop --fast`` (interpreter start included) of each probe at each level, and
the time the venet probe spent in the network plugin's hooks (measured in vzctl's
process with ``hooktimes.py``): that is the network's cost, and it must not grow with
the number of CTs.  The probes are interleaved so that load from elsewhere on the
machine hits both alike.  Setup is kept short: CT 101 is created from
the busybox template, and the others get a copy of its config (with their
``IP_ADDRESS``) and a hard-linked copy of its private area.  Everything is stopped with
``--fast`` and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

from population import FIRST, address, clone, installation, reexec_in_netns, vzctl

PROBE_VENET = 9001
PROBE_PLAIN = 9002


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f}" if values else "      -"


def probe(env: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """Start and stop the two probe CTs ``rounds`` times, interleaved (so that load from
    elsewhere hits both alike): wall times of start and ``stop --fast`` of each."""
    times: dict[str, list[float]] = {"venet": [], "plain": [], "venet_stop": [], "plain_stop": [],
                                     "venet_hooks": [], "venet_stop_hooks": []}
    for _ in range(rounds):
        for name, ctid in (("venet", PROBE_VENET), ("plain", PROBE_PLAIN)):
            hooks: dict[str, float] = {}
            times[name].append(vzctl(env, "start", ctid, hooks=hooks))
            if name == "venet":
                times["venet_hooks"].append(hooks.get("network", 0.0))
            hooks = {}
            times[f"{name}_stop"].append(vzctl(env, "stop", "--fast", ctid, hooks=hooks))
            if name == "venet":
                times["venet_stop_hooks"].append(hooks.get("network", 0.0))
    return times


def run(counts: list[int], rounds: int, output: str | None) -> None:
    largest = max(counts)
    results: dict[str, object] = {"levels": {}}
    with installation("vzbench-net") as (root, env, _parent):
        vzctl(env, "create", FIRST, "--ostemplate", "busybox")
        print(f"setting up {largest} CTs and two probes ...", flush=True)
        for i in range(1, largest):
            clone(root, FIRST, FIRST + i, address(i))
        clone(root, FIRST, PROBE_VENET, "10.201.0.1")
        clone(root, FIRST, PROBE_PLAIN, None)
        conf = root / f"etc/vz/conf/{FIRST}.conf"
        conf.write_text(conf.read_text() + f'IP_ADDRESS="{address(0)}"\n')
        population: list[float] = []
        started: list[int] = []
        rows = []
        for count in counts:
            while len(started) < count:
                population.append(vzctl(env, "start", FIRST + len(started)))
                started.append(FIRST + len(started))
            times = probe(env, rounds)
            results["levels"][count] = times  # type: ignore[index]
            rows.append((count, times))
            print(f"  {count} running: venet {median_ms(times['venet']).strip()} ms, "
                  f"no network {median_ms(times['plain']).strip()} ms", flush=True)
        results["population_starts"] = population
        reachable = subprocess.run(["busybox", "ping", "-c", "1", "-W", "1", address(largest - 1)],
                                   capture_output=True, check=False).returncode == 0
        results["population_stops"] = [vzctl(env, "stop", "--fast", ctid)
                                       for ctid in reversed(started)]
    print()
    print(f"median wall time in ms over {rounds} interleaved rounds of a probe CT, "
          "with N CTs (one venet address each) running")
    print(f"{'N':>5} {'start venet':>12} {'start no-net':>13} {'network hooks':>14} "
          f"{'stop venet':>11} {'stop no-net':>12} {'network hooks':>14}")
    for count, t in rows:
        print(f"{count:>5} {median_ms(t['venet']):>12} {median_ms(t['plain']):>13} "
              f"{median_ms(t['venet_hooks']):>14} {median_ms(t['venet_stop']):>11} "
              f"{median_ms(t['plain_stop']):>12} {median_ms(t['venet_stop_hooks']):>14}")
    print("(network hooks: time spent in the network plugin's hooks in vzctl's process)")
    for lo, hi in sorted({(0, 10), (90, 100), (largest - 10, largest)}):
        if lo >= 0 and hi <= len(population):
            print(f"starting CT {lo + 1}-{hi} of the population: median "
                  f"{median_ms(population[lo:hi]).strip()} ms")
    print(f"last CT reachable from the host by ping: {'yes' if reachable else 'NO'}")
    if output:
        Path(output).write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10,100,500",
                        help="numbers of running CTs at which to measure (default 10,100,500)")
    parser.add_argument("--rounds", type=int, default=15, help="probe starts per level")
    parser.add_argument("--output", help="also write every measurement to this JSON file")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    reexec_in_netns()
    run(counts, args.rounds, args.output)


if __name__ == "__main__":
    main()
