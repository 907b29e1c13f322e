"""Benchmarks of the beancounters plugin: what it adds to ``vzctl start``, the cost of
``vzctl ubc`` and ``vzlist``, a read of a CT's ``/dev/user_beancounters``, and the view
daemon's memory.

Run as root from the repository (busybox-static installed)::

    .venv/bin/python contrib/bench/beancounters.py [--runs 15] [--cts 5]

Prints medians (milliseconds).  Everything happens in a private VZ_ROOT with its own
CGROUP_PARENT, removed at the end.
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

from population import remove_cgroup_parent

BIN = Path(sys.executable).parent
SAMPLES = Path(__file__).resolve().parents[2] / "plugins/beancounters/vzcore_beancounters/samples"
RESOURCE_NAMES = ("kmemsize", "lockedpages", "privvmpages", "shmpages", "numproc", "physpages",
                  "vmguarpages", "oomguarpages", "numtcpsock", "numflock", "numpty", "numsiginfo",
                  "tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "numothersock",
                  "dcachesize", "numfile", "numiptent", "swappages")


def vz(env: dict[str, str], *args: str) -> float:
    """Run a vzcore command; its wall time in ms."""
    started = time.perf_counter()
    subprocess.run([str(BIN / args[0]), *args[1:]], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - started) * 1000


def median(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} ms (n={len(values)})"


def write_vz_conf(root: Path, parent: str, disabled: bool) -> None:
    lines = [f'CGROUP_PARENT="{parent}"', 'STOP_TIMEOUT="5"']
    if disabled:
        lines.append('DISABLED_PLUGINS="beancounters"')
    (root / "etc/vz/vz.conf").write_text("\n".join(lines) + "\n")


def init_pid(root: Path, ctid: int) -> int:
    return int(json.loads((root / f"run/vz/{ctid}.json").read_text())["init"]["pid"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--cts", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vzbench-ubc-"))
    parent = f"vzbench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "VZ_ROOT": str(root)}
    (root / "etc/vz/conf").mkdir(parents=True)
    for sample in SAMPLES.glob("ve-*.conf-sample"):
        shutil.copy(sample, root / "etc/vz/conf" / sample.name)
    ctids = [101 + i for i in range(args.cts)]
    try:
        write_vz_conf(root, parent, disabled=False)
        for ctid in ctids:
            vz(env, "vzctl", "--quiet", "create", str(ctid), "--ostemplate", "busybox",
               "--config", "basic")
        # With and without the plugin in turn, so that load from elsewhere hits both alike.
        starts: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.runs):
            for disabled in (True, False):
                write_vz_conf(root, parent, disabled)
                starts[disabled].append(vz(env, "vzctl", "--quiet", "start", "101"))
                vz(env, "vzctl", "--quiet", "stop", "--fast", "101")
        print(f"vzctl start, basic sample, without the plugin: {median(starts[True])}")
        print(f"vzctl start, basic sample, with the plugin:    {median(starts[False])}")
        write_vz_conf(root, parent, disabled=False)
        for ctid in ctids:
            vz(env, "vzctl", "--quiet", "start", str(ctid))
        print(f"vzctl ubc, {args.cts} running CTs:              "
              f"{median([vz(env, 'vzctl', 'ubc') for _ in range(args.runs)])}")
        print(f"vzctl ubc 101:                              "
              f"{median([vz(env, 'vzctl', 'ubc', '101') for _ in range(args.runs)])}")
        lists: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.runs):
            for disabled in (True, False):
                write_vz_conf(root, parent, disabled)
                lists[disabled].append(vz(env, "vzlist", "-a"))
        print(f"vzlist -a, {args.cts} running CTs, without the plugin: {median(lists[True])}")
        print(f"vzlist -a, {args.cts} running CTs, with the plugin:    {median(lists[False])}")
        write_vz_conf(root, parent, disabled=False)
        print(f"vzlist -a -o all beancounters, {args.cts} CTs:    " + median(
            [vz(env, "vzlist", "-a", "-o", ",".join(RESOURCE_NAMES)) for _ in range(args.runs)]))
        write_vz_conf(root, parent, disabled=False)
        view = f"/proc/{init_pid(root, 101)}/root/dev/user_beancounters"
        reads = []
        for _ in range(args.runs * 4):
            started = time.perf_counter()
            with open(view, "rb") as f:
                assert f.read().startswith(b"Version: 2.5")
            reads.append((time.perf_counter() - started) * 1000)
        print(f"read of a CT's /dev/user_beancounters:      {median(reads)}")
        pid = int((root / "run/vz/beancounters/view.pid").read_text().split()[0])
        with open(f"/proc/{pid}/status") as f:
            rss = next(line.split()[1] for line in f if line.startswith("VmRSS:"))
        print(f"view daemon resident memory, {args.cts} CTs:       {int(rss) / 1024:7.1f} MiB")
    finally:
        for ctid in ctids:
            subprocess.run([str(BIN / "vzctl"), "--quiet", "stop", "--fast", str(ctid)], env=env,
                           check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        remove_cgroup_parent(parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
