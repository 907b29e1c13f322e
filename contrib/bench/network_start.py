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
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

FIRST = 101
PROBE_VENET = 9001
PROBE_PLAIN = 9002
REEXEC_ENV = "VZ_BENCH_IN_NETNS"


def in_private_netns() -> bool:
    from vzcore.testing.probes import in_private_netns as probe

    return probe()


HOOKTIMES = str(Path(__file__).with_name("hooktimes.py"))


def vzctl(env: dict[str, str], *args: object, check: bool = True,
          hooks: dict[str, float] | None = None) -> float:
    """Run vzctl; return its wall time in seconds.  With ``hooks``, run it through
    ``hooktimes.py`` and add each plugin's hook time (seconds) to ``hooks[plugin]``."""
    argv = ([sys.executable, HOOKTIMES] if hooks is not None
            else [str(Path(sys.executable).with_name("vzctl"))])
    started = time.perf_counter()
    result = subprocess.run([*argv, "--quiet", *map(str, args)], env=env, capture_output=True,
                            text=True, check=False)
    elapsed = time.perf_counter() - started
    if check and result.returncode != 0:
        raise SystemExit(f"vzctl {' '.join(map(str, args))} failed: {result.stderr.strip()}")
    if hooks is not None:
        for line in result.stderr.splitlines():
            words = line.split()
            if len(words) == 4 and words[0] == "hooktime" and words[1] != "total":
                hooks[words[1]] = hooks.get(words[1], 0.0) + float(words[3]) / 1000
    return elapsed


def address(index: int) -> str:
    return f"10.200.{index // 250}.{index % 250 + 1}"


def clone(root: Path, source: int, ctid: int, ip: str | None) -> None:
    """CT ``ctid`` as a copy of CT ``source``: its config (with ``ip``) and a hard-linked
    private area."""
    conf_dir = root / "etc/vz/conf"
    lines = [line for line in (conf_dir / f"{source}.conf").read_text().splitlines()
             if not line.startswith("IP_ADDRESS=")]
    if ip:
        lines.append(f'IP_ADDRESS="{ip}"')
    (conf_dir / f"{ctid}.conf").write_text("\n".join(lines) + "\n")
    subprocess.run(["cp", "-a", "--link", str(root / f"vz/private/{source}"),
                    str(root / f"vz/private/{ctid}")], check=True)


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
    root = Path(tempfile.mkdtemp(prefix="vzbench-net-"))
    env = {**os.environ, "VZ_ROOT": str(root)}
    (root / "etc/vz").mkdir(parents=True)
    parent = f"vzbench-net-{uuid.uuid4().hex[:8]}"
    (root / "etc/vz/vz.conf").write_text(
        f'CGROUP_PARENT="{parent}"\nSTOP_TIMEOUT="5"\nNEIGHBOUR_DEVS="none"\n')
    started: list[int] = []
    results: dict[str, object] = {"levels": {}}
    try:
        vzctl(env, "create", FIRST, "--ostemplate", "busybox")
        print(f"setting up {largest} CTs and two probes ...", flush=True)
        for i in range(1, largest):
            clone(root, FIRST, FIRST + i, address(i))
        clone(root, FIRST, PROBE_VENET, "10.201.0.1")
        clone(root, FIRST, PROBE_PLAIN, None)
        conf = root / f"etc/vz/conf/{FIRST}.conf"
        conf.write_text(conf.read_text() + f'IP_ADDRESS="{address(0)}"\n')
        population: list[float] = []
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
        stops = [vzctl(env, "stop", "--fast", ctid) for ctid in reversed(started)]
        started.clear()
        results["population_stops"] = stops
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
    finally:
        for ctid in started:
            vzctl(env, "stop", "--fast", ctid, check=False)
        for state in (root / "run/vz").glob("*.json") if (root / "run/vz").exists() else []:
            vzctl(env, "stop", "--fast", state.stem, check=False)
        shutil.rmtree(root, ignore_errors=True)
        _remove_cgroup_parent(parent)


def _remove_cgroup_parent(parent: str) -> None:
    from vzcore.linux import cgroups

    for hierarchy in cgroups.hierarchies():
        directory = hierarchy.directory(cgroups.resolve_parent(parent, hierarchy))
        if directory.exists():
            for child in directory.iterdir():
                if child.is_dir():
                    child.rmdir()
            directory.rmdir()


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
    if not in_private_netns() and not os.environ.get(REEXEC_ENV):
        os.environ[REEXEC_ENV] = "1"  # (the probe cannot always tell, e.g. under nohup)
        os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c",
                              "ip link set lo up && ip link add vzb-up0 type veth peer name vzb-up1"
                              " && ip addr add 10.200.255.1/24 dev vzb-up0 && ip link set vzb-up0 up"
                              ' && ip link set vzb-up1 up && exec "$0" "$@"', sys.executable,
                              os.path.abspath(__file__), *sys.argv[1:]])
    run(counts, args.rounds, args.output)


if __name__ == "__main__":
    main()
