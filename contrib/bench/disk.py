"""Create, start and stop time per disk layout, and file throughput inside an image CT
against the host's own disk, in one run (docs/disk.md, "Benchmark").

Run as root from the repository:

    .venv/bin/python contrib/bench/disk.py [--rounds 5] [--mb 256] [--plot docs/bench/disk.svg]

It works in a private ``VZ_ROOT`` (re-executed in a network namespace of its own) with a
btrfs pool it makes on a loop device for the btrfs layout.  Each round creates a busybox
CT in each layout (simfs, image, btrfs: 512M), starts it, stops it (``--fast``) and
destroys it; the layouts take turns, so that load from elsewhere hits all alike.  Then
``--mb`` MiB are written (``dd conv=fsync``) and read back inside a simfs CT, whose files
are on the host's disk, and inside an image CT; before each read the page cache is
dropped (``/proc/sys/vm/drop_caches``: run it on a machine where that is acceptable), so
the reads come from the disk.  Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from population import installation, reexec_in_netns, vzctl
from svgplot import strip_plot

LAYOUTS = ("simfs", "image", "btrfs")


def make_pool(root: Path) -> Path:
    image = root / "pool.img"
    with open(image, "wb") as f:
        f.truncate(4 * 1024**3)
    subprocess.run(["mkfs.btrfs", "-q", "-f", str(image)], check=True, capture_output=True)
    pool = root / "btrfs"
    pool.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(pool)], check=True)
    with open(root / "etc/vz/vz.conf", "a") as f:
        f.write('BTRFS_POOL="/btrfs"\n')
    return pool


def options(layout: str) -> list[str]:
    return [] if layout == "simfs" else ["--layout", layout, "--diskspace", "512M"]


def lifecycle(env: dict[str, str], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    ctid = 200
    for _ in range(rounds):
        for layout in LAYOUTS:
            ctid += 1
            for verb, argv in (("create", [ctid, "--ostemplate", "busybox", *options(layout)]),
                               ("start", [ctid]), ("stop", ["--fast", ctid])):
                elapsed = vzctl(env, verb, *argv)
                times.setdefault(f"{layout} {verb}", []).append(elapsed * 1000)
            vzctl(env, "destroy", ctid)
    return times


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def throughput(env: dict[str, str], mb: int) -> dict[str, float]:
    """MiB/s written (fsync'ed) and read (caches dropped) inside a simfs and an image CT."""
    results = {}
    vzctl_bin = str(Path(sys.executable).with_name("vzctl"))
    for ctid, layout in ((301, "simfs"), (302, "image")):
        extra = [] if layout == "simfs" else ["--layout", "image", "--diskspace", f"{mb * 2}M"]
        vzctl(env, "create", ctid, "--ostemplate", "busybox", *extra)
        vzctl(env, "start", ctid)
        for what, script in (("write", f"dd if=/dev/zero of=/f bs=1M count={mb} conv=fsync"),
                             ("read", "dd if=/f of=/dev/null bs=1M")):
            if what == "read":
                drop_caches()
            start = time.monotonic()
            subprocess.run([vzctl_bin, "exec", str(ctid), script], env=env, check=True,
                           capture_output=True)
            results[f"{layout} {what}"] = mb / (time.monotonic() - start)
        vzctl(env, "stop", "--fast", ctid)
        vzctl(env, "destroy", ctid)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    reexec_in_netns()
    with installation("vzb-disk") as (root, env, _parent):
        pool = make_pool(root)
        try:
            times = lifecycle(env, args.rounds)
            speeds = throughput(env, args.mb)
        finally:
            subprocess.run(["umount", str(pool)], check=False)
    print(f"{'layout and verb':<16} {'median ms':>10}  (n={args.rounds})")
    for name, values in times.items():
        print(f"{name:<16} {statistics.median(values):10.1f}")
    print(f"\n{'inside a CT':<16} {'MiB/s':>10}  ({args.mb} MiB)")
    for name, value in speeds.items():
        print(f"{name:<16} {value:10.1f}")
    if args.plot:
        args.plot.write_text(strip_plot("vzctl per layout (busybox CT)", "ms",
                                        [(name, values) for name, values in times.items()]))


if __name__ == "__main__":
    main()
