"""Benchmark: ``vzctl start`` of a busybox CT (command to init running) and ``vzctl --version``.

Run as root:  .venv/bin/python contrib/bench/start_latency.py [--runs 30] [--plot FILE.svg]

Each run is a whole process, timed from exec to exit; ``vzctl start`` returns once the
CT's init has exec'd (the start protocol waits for it).  Anchors measured in the same run:
the interpreter alone, the interpreter importing click + pluggy + attrs (vzcore's
dependency floor), and ``unshare`` starting /bin/true in fresh namespaces.  The machine is
noisy (shared VM): read medians and ratios to the same-run anchors.  Targets on the
project machine: start 150 ms, --version 100 ms.  The benchmark re-runs itself inside a
network namespace of its own and cleans up everything it made.
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

from vzcore.testing.probes import in_private_namespace

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def measure(label: str, argv: list[str], env: dict[str, str], runs: int,
            after: list[str] | None = None) -> tuple[str, list[float]]:
    samples = []
    for _ in range(runs):
        samples.append(timed(argv, env))
        if after:
            subprocess.run(after, env=env, check=True, capture_output=True)
    return label, samples


def summary(label: str, samples: list[float]) -> dict[str, float | str]:
    ordered = sorted(samples)
    return {"what": label, "median_ms": round(statistics.median(ordered), 1),
            "p10_ms": round(ordered[len(ordered) // 10], 1),
            "p90_ms": round(ordered[(len(ordered) * 9) // 10], 1), "runs": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--plot", type=Path, help="write an SVG strip plot here")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if not in_private_namespace("net"):
        os.execvp("unshare", ["unshare", "--net", "--", sys.executable, *sys.argv])

    work = Path(tempfile.mkdtemp(prefix="vzbench-"))
    env = {**os.environ, "VZ_ROOT": str(work)}
    parent = f"vzbench-{uuid.uuid4().hex[:8]}"
    (work / "etc/vz").mkdir(parents=True)
    (work / "etc/vz/vz.conf").write_text(f'CGROUP_PARENT="{parent}"\nSTOP_TIMEOUT="10"\n')
    vzctl = str(BIN / "vzctl")
    try:
        subprocess.run([vzctl, "-q", "create", "101", "--ostemplate", "busybox"], env=env, check=True)
        subprocess.run([vzctl, "-q", "start", "101"], env=env, check=True)  # warm caches
        subprocess.run([vzctl, "-q", "stop", "--fast", "101"], env=env, check=True)
        results = [
            measure("python -c pass", [sys.executable, "-c", "pass"], env, args.runs),
            measure("python: import click, pluggy, attrs",
                    [sys.executable, "-c", "import click, pluggy, attrs"], env, args.runs),
            measure("unshare ... /bin/true", ["unshare", "--fork", "--pid", "--mount", "--uts",
                                              "--ipc", "--net", "--mount-proc", "/bin/true"],
                    env, args.runs),
            measure("vzctl --version", [vzctl, "--version"], env, args.runs),
            measure("vzctl start (busybox CT)", [vzctl, "-q", "start", "101"], env, args.runs,
                    after=[vzctl, "-q", "stop", "--fast", "101"]),
        ]
    finally:
        subprocess.run([vzctl, "-q", "stop", "--fast", "101"], env=env, capture_output=True)
        subprocess.run([vzctl, "-q", "destroy", "101"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        remove_cgroup_parent(parent)

    rows = [summary(label, samples) for label, samples in results]
    floor = rows[1]["median_ms"]
    print(f"{'what':<38} {'median':>8} {'p10':>8} {'p90':>8}   (ms, {args.runs} runs)")
    for row in rows:
        print(f"{row['what']:<38} {row['median_ms']:>8} {row['p10_ms']:>8} {row['p90_ms']:>8}")
    start, version = rows[4]["median_ms"], rows[3]["median_ms"]
    print(f"\nvzctl start: {start} ms (target 150; {start - floor:.1f} ms above the "
          f"click+pluggy+attrs import floor)")
    print(f"vzctl --version: {version} ms (target 100)")
    if args.json:
        args.json.write_text(json.dumps({"results": rows, "samples": dict(results)}, indent=1))
    if args.plot:
        sys.path.insert(0, str(HERE))
        from svgplot import strip_plot

        args.plot.write_text(strip_plot("vzctl start and --version on this machine", "ms",
                                        list(reversed(results)), target=150))
    return 0


if __name__ == "__main__":
    sys.exit(main())
