"""Per-CT cost of ``vzctl start`` with one venet address, as the number of running CTs grows.

Run as root from the repository (it re-executes itself in a new network namespace, so no
host interface is touched):

    .venv/bin/python contrib/bench/network_start.py [--counts 10,100,500]

CTs are started one after another, each with one venet address (10.200.x.y), and stay
running; the wall time of every ``vzctl start`` (the real CLI, interpreter start
included) is recorded.  Printed: the median start time of the first 10 CTs, of CTs 91-100
and of CTs 491-500 (that is, with about 10, 100 and 500 CTs running), next to the median
for CTs without any network setting (the baseline), and the median ``vzctl stop --fast``.
A start whose cost grew with the number of CTs would show here (no step of a start scans
every route, link or CT).  Setup is kept short: CT 101 is created from the busybox
template, and the others get a copy of its config (with their ``IP_ADDRESS``) and a hard-linked
copy of its private area.  Everything is stopped with ``--fast`` and removed at the end.
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
from pathlib import Path

FIRST = 101
BASELINE_FIRST = 5001
BASELINE_COUNT = 10


def in_private_netns() -> bool:
    from vzcore.testing.probes import in_private_netns as probe

    return probe()


def vzctl(env: dict[str, str], *args: object, check: bool = True) -> float:
    """Run vzctl; return its wall time in seconds."""
    binary = str(Path(sys.executable).with_name("vzctl"))
    started = time.perf_counter()
    result = subprocess.run([binary, "--quiet", *map(str, args)], env=env, capture_output=True,
                            text=True, check=False)
    elapsed = time.perf_counter() - started
    if check and result.returncode != 0:
        raise SystemExit(f"vzctl {' '.join(map(str, args))} failed: {result.stderr.strip()}")
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


def run(counts: list[int]) -> None:
    largest = max(counts)
    root = Path(tempfile.mkdtemp(prefix="vzbench-net-"))
    env = {**os.environ, "VZ_ROOT": str(root)}
    (root / "etc/vz").mkdir(parents=True)
    parent = f"vzbench-net-{uuid.uuid4().hex[:8]}"
    (root / "etc/vz/vz.conf").write_text(
        f'CGROUP_PARENT="{parent}"\nSTOP_TIMEOUT="5"\nNEIGHBOUR_DEVS="none"\n')
    started: list[int] = []
    try:
        vzctl(env, "create", FIRST, "--ostemplate", "busybox")
        print(f"setting up {largest} CTs + {BASELINE_COUNT} without network ...", flush=True)
        for i in range(BASELINE_COUNT):
            clone(root, FIRST, BASELINE_FIRST + i, None)
        for i in range(largest):
            if i:
                clone(root, FIRST, FIRST + i, address(i))
        (root / "etc/vz/conf/101.conf").write_text(
            (root / "etc/vz/conf/101.conf").read_text() + f'IP_ADDRESS="{address(0)}"\n')
        baseline = []
        for i in range(BASELINE_COUNT):
            baseline.append(vzctl(env, "start", BASELINE_FIRST + i))
        stops_baseline = [vzctl(env, "stop", "--fast", BASELINE_FIRST + i)
                          for i in range(BASELINE_COUNT)]
        times: list[float] = []
        for i in range(largest):
            times.append(vzctl(env, "start", FIRST + i))
            started.append(FIRST + i)
            if (i + 1) % 50 == 0:
                print(f"  {i + 1} running, last start {times[-1] * 1000:.0f} ms", flush=True)
        reachable = subprocess.run(["busybox", "ping", "-c", "1", "-W", "1", address(largest - 1)],
                                   capture_output=True, check=False).returncode == 0
        stops: list[float] = []
        for ctid in reversed(started):
            stops.append(vzctl(env, "stop", "--fast", ctid))
        started.clear()
        print()
        print("vzctl start, median wall time in ms (one venet address per CT)")
        print(f"{'CTs running':>12} {'start':>8} {'no network':>11}")
        for count in counts:
            window = times[max(0, count - 10):count]
            print(f"{count:>12} {median_ms(window)} {median_ms(baseline) if count == counts[0] else '':>11}")
        print(f"vzctl stop --fast: median {median_ms(stops).strip()} ms "
              f"(no network: {median_ms(stops_baseline).strip()} ms)")
        print(f"last CT reachable from the host by ping: {'yes' if reachable else 'NO'}")
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
                        help="numbers of running CTs at which to report (default 10,100,500)")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not in_private_netns():
        os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c",
                              "ip link set lo up && ip link add vzb-up0 type veth peer name vzb-up1"
                              " && ip addr add 10.200.255.1/24 dev vzb-up0 && ip link set vzb-up0 up"
                              ' && ip link set vzb-up1 up && exec "$0" "$@"', sys.executable,
                              os.path.abspath(__file__), *sys.argv[1:]])
    run(counts)


if __name__ == "__main__":
    main()
