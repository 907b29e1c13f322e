"""Boot throughput: ``vzctl boot-all`` taking N busybox CTs from stopped to all running.

Run as root from the repository (it re-executes itself in a new network namespace, so no
host interface is touched):

    .venv/bin/python contrib/bench/boot_all.py [--cts 100,1000] [--parallel N]

Each CT is a busybox CT with every installed plugin active, one venet address, a
beancounter limit (``--numproc``, ``--physpages``) and CPU limits (``--cpuunits``,
``--cpulimit``), ``ONBOOT=yes``; they are set up as copies of CT 101 (``population.py``).  The
installation's ``/run`` is a tmpfs, as a host's is (vzcore keeps its state files in
``/run/vz``): the private ``VZ_ROOT`` itself lies in /tmp, on disk here.
The benchmark runs one ``vzctl boot-all`` (one process: plugins loaded once, each start
in a forked child), prints its wall time and the median of the per-CT start times it
reports, the median start time of each tenth of the CTs in the order they finished (flat
when a start does not slow down as more CTs run) and the CPU time boot-all, its forked
starts and their helpers used (``RUSAGE_CHILDREN``: the CTs' inits, still running, are
not in it), checks that every CT runs, then times ``vzctl stop-all``.  The load average
is printed with the figures: the machine is shared, and CPU time is the figure that
compares across loads.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from population import FIRST, address, clone, installation, reexec_in_netns, vzctl


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def children_cpu() -> float:
    """CPU seconds (user + system) of every reaped descendant so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run vzctl; its wall time and stdout (it must succeed: else its output and the
    console daemon's log are kept, see :func:`keep_logs`)."""
    argv = [str(Path(sys.executable).with_name("vzctl")), *args]
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        kept = keep_logs(Path(env["VZ_ROOT"]), args[0], result.stdout, result.stderr)
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}): "
                         f"{result.stderr.strip()[-2000:]}\n(output and logs kept in {kept})")
    return elapsed, result.stdout


def keep_logs(root: Path, verb: str, stdout: str, stderr: str) -> Path:
    """Save a failed run's output and the console daemon's log (which holds what the
    holders it forked wrote) outside the installation, which is removed at the end."""
    kept = Path(tempfile.mkdtemp(prefix=f"vzbench-{verb}-failed-"))
    (kept / "stdout").write_text(stdout)
    (kept / "stderr").write_text(stderr)
    log = root / "run/vz/console/console.log"
    if log.exists():
        shutil.copy(log, kept / "console.log")
    return kept


def unmount_run(run: Path) -> None:
    """Unmount the installation's ``/run`` once the daemons that keep files there are
    gone (the console daemon exits on its own once its last CT's end is handled, which
    after a stop-all of 1,000 takes a while); lazily if it is still busy after 2 min."""
    deadline = time.monotonic() + 120
    while subprocess.run(["umount", str(run)], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "--lazy", str(run)], check=False)
            print(f"warning: {run} was still in use 2 min after the run; unmounted lazily",
                  flush=True)
            return
        time.sleep(1)


def per_ct(stdout: str, word: str) -> list[float]:
    """The per-CT seconds of the progress lines ``CT N started (0.12 s)``."""
    return [float(line.rsplit("(", 1)[1].split()[0]) for line in stdout.splitlines()
            if line.startswith("CT ") and f" {word} (" in line]


def by_decile(starts: list[float]) -> list[tuple[int, int, float]]:
    """The median start time (ms) of each tenth of the CTs, in the order they finished:
    flat when a start costs the same with 10 or 900 CTs already running."""
    step = max(1, len(starts) // 10)
    return [(i, min(i + step, len(starts)), statistics.median(starts[i:i + step]) * 1000)
            for i in range(0, len(starts), step)]


def run(count: int, parallel: int | None) -> dict[str, float]:
    with installation("vzbench-bootall") as (root, env, _parent):
        vzctl(env, "create", FIRST, "--ostemplate", "busybox", "--ipadd", address(0))
        vzctl(env, "set", FIRST, "--onboot", "yes", "--numproc", "200:200",
              "--physpages", "0:64M", "--cpuunits", "1000", "--cpulimit", "50", "--save")
        print(f"setting up {count} CTs ...", flush=True)
        for i in range(1, count):
            clone(root, FIRST, FIRST + i, address(i))
        extra = ["--parallel", str(parallel)] if parallel else []
        (root / "run").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "vzbench", str(root / "run")],
                       check=True)
        try:
            before = load()
            cpu = children_cpu()
            total, out = timed(env, "boot-all", *extra)
            cpu = children_cpu() - cpu  # boot-all, its forked starts and their helpers
            after = load()
            starts = per_ct(out, "started")
            running = len(list((root / "run/vz").glob("*.json")))
            if running != count or len(starts) != count:
                raise SystemExit(f"only {running} of {count} CTs run after boot-all")
            print(f"{count} CTs: boot-all {total:.2f} s (median per-CT start "
                  f"{statistics.median(starts) * 1000:.0f} ms, {total / count * 1000:.1f} ms "
                  f"of wall time per CT); CPU time {cpu:.1f} s, {cpu / count * 1000:.1f} ms "
                  f"per CT; load average before {before}, after {after}", flush=True)
            print(f"{count} CTs: median start of the n-th CT to finish: "
                  + ", ".join(f"{first + 1}-{last}: {ms:.0f} ms"
                              for first, last, ms in by_decile(starts)), flush=True)
            stop_load = load()
            stop_cpu = children_cpu()
            stop_total, stop_out = timed(env, "stop-all", "--fast")
            stop_cpu = children_cpu() - stop_cpu
            stops = per_ct(stop_out, "stopped")
        finally:
            try:
                timed(env, "stop-all", "--fast")  # nothing left to stop unless a step failed
            finally:
                unmount_run(root / "run")
    result = {"cts": count, "total_s": total, "median_s": statistics.median(starts),
              "cpu_s": cpu,
              "stop_total_s": stop_total, "stop_median_s": statistics.median(stops),
              "stop_cpu_s": stop_cpu}
    print(f"{count} CTs: stop-all --fast {stop_total:.2f} s (median per-CT stop "
          f"{result['stop_median_s'] * 1000:.0f} ms); CPU time {stop_cpu:.1f} s, "
          f"{stop_cpu / count * 1000:.1f} ms per CT; load average before {stop_load}, "
          f"after {load()}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cts", default="100,1000", help="comma-separated CT counts")
    parser.add_argument("--parallel", type=int, help="VE_PARALLEL for the run (default: vz.conf's)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    reexec_in_netns()
    print(f"{os.cpu_count()} CPUs, {os.uname().release}")
    for count in (int(c) for c in args.cts.split(",")):
        run(count, args.parallel)


if __name__ == "__main__":
    main()
