"""Create, start and stop time per disk layout, file throughput inside an image and an
overlay CT against the host's own disk, and what N overlay CTs of one template share, in
one run (docs/disk.md, "Benchmark").

Run as root from the repository:

    .venv/bin/python contrib/bench/disk.py [--rounds 5] [--mb 256] [--plot docs/bench/disk.svg]

It works in a private ``VZ_ROOT`` (re-executed in a network namespace of its own) with a
btrfs pool it makes on a loop device for the btrfs layout.  Each round creates a busybox
CT in each layout (simfs, image, btrfs, overlay: 512M), starts it, stops it (``--fast``) and
destroys it; the layouts take turns, so that load from elsewhere hits all alike.  Then
``--mb`` MiB are written (``dd conv=fsync``) and read back inside a simfs CT, whose files
are on the host's disk, inside an image CT and inside an overlay CT (the file is in its
upper layer, an image too); before each read the page cache is dropped
(``/proc/sys/vm/drop_caches``: run it on a machine where that is acceptable), so the reads
come from the disk.

Sharing (``--share N``, default 20, ``--share-template``, default busybox): N overlay CTs
of one template are created and started, each writes 1 MiB of its own; the host's disk
use of the installation (``du -skx`` of ``VZ_ROOT/vz``) is taken before, after the creates
and after the writes, with the template's shared tree's own size.  Then every CT runs the
template's shell binary (reads it whole and runs it) and the page cache is read two
ways: ``fincore`` of the shared tree's file (the bytes of it in the cache) and the page
cache charged to each CT's memory cgroup (memory.stat ``file``, or ``cache`` on cgroup v1,
less ``shmem``): the first CT to read a page is charged with it, the others find it there.
Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from population import installation, reexec_in_netns, vzctl
from svgplot import strip_plot

LAYOUTS = ("simfs", "image", "btrfs", "overlay")


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
    for ctid, layout in ((301, "simfs"), (302, "image"), (303, "overlay")):
        extra = [] if layout == "simfs" else ["--layout", layout, "--diskspace", f"{mb * 2}M"]
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


def du_k(path: Path) -> int:
    done = subprocess.run(["du", "-skx", str(path)], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[0])


def file_pages_k(root: Path, parent: str, ctid: int) -> int:
    """KiB of page cache (tmpfs excepted) charged to the CT's memory cgroup."""
    from vzcore.ctgroups import group_name
    from vzcore.linux.cgroups import parent_dirs
    from vzcore.paths import Paths

    for directory in parent_dirs(parent):
        stat_file = directory / group_name(Paths(root), ctid) / "memory.stat"
        if stat_file.exists():
            stat = dict(line.split() for line in stat_file.read_text().splitlines())
            cached = stat["file"] if "file" in stat else stat["cache"]
            return (int(cached) - int(stat["shmem"])) // 1024
    return 0


def drop_cache(path: Path) -> None:
    """Write ``path`` back and drop its pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident_k(path: Path) -> int:
    done = subprocess.run(["fincore", "-b", "-n", "-o", "RES", str(path)], check=True,
                          capture_output=True, text=True)
    return int(done.stdout.split()[0]) // 1024


def sharing(env: dict[str, str], root: Path, parent: str, count: int,
            template: str, layout: str = "overlay") -> dict[str, float]:
    """Host disk use and page cache of ``count`` CTs of ``template`` (``layout`` simfs: the
    control, every CT with copies of its own)."""
    vzctl_bin = str(Path(sys.executable).with_name("vzctl"))
    binary, run = (("/bin/busybox", "/bin/busybox true") if template == "busybox"
                   else ("/bin/bash", "/bin/bash -c true"))
    ctids = list(range(401, 401 + count))
    area = root / "vz"
    area.mkdir(exist_ok=True)
    figures: dict[str, float] = {"disk before": du_k(area)}
    for ctid in ctids:
        vzctl(env, "create", ctid, "--ostemplate", template,
              *(["--layout", "overlay", "--diskspace", "1G"] if layout == "overlay" else []))
    figures["disk after create"] = du_k(area)
    if layout == "overlay":
        [tree] = (area / "template/shared").glob(f"{template}@*")
        figures["shared tree"] = du_k(tree)
        copies = [tree / binary.lstrip("/")]
    else:
        copies = [area / f"private/{ctid}" / binary.lstrip("/") for ctid in ctids]
    figures["binary"] = copies[0].stat().st_size // 1024
    for copy in copies:
        drop_cache(copy)  # no CT runs yet: nothing maps it
    charged = []
    for ctid in ctids:  # each CT's memory cgroup is new at its start
        vzctl(env, "start", ctid)
        subprocess.run([vzctl_bin, "exec", str(ctid), f"cat {binary} >/dev/null; {run}"],
                       env=env, check=True, capture_output=True)
        charged.append(file_pages_k(root, parent, ctid))
    figures["binary in page cache"] = sum(resident_k(copy) for copy in copies)
    figures["page cache charged to the first CT"] = charged[0]
    figures["page cache charged to each other CT (max)"] = max(charged[1:], default=0)
    figures["page cache charged to all CTs"] = sum(charged)
    for ctid in ctids:
        subprocess.run([vzctl_bin, "exec", str(ctid),
                        "dd if=/dev/urandom of=/change bs=1M count=1 2>/dev/null; sync"],
                       env=env, check=True, capture_output=True)
    subprocess.run(["sync"], check=True)
    figures["disk after 1 MiB each"] = du_k(area)
    for ctid in ctids:
        vzctl(env, "stop", "--fast", ctid)
        vzctl(env, "destroy", ctid)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--share", type=int, default=20, help="overlay CTs sharing a template")
    parser.add_argument("--share-template", default="busybox", metavar="NAME")
    parser.add_argument("--only-share", action="store_true", help="skip the timings")
    args = parser.parse_args()
    reexec_in_netns()
    times: dict[str, list[float]] = {}
    speeds: dict[str, float] = {}
    control: dict[str, float] = {}
    with installation("vzb-disk") as (root, env, parent):
        pool = make_pool(root)
        if args.share_template != "busybox":  # a cached template: from the test templates
            templates = os.environ.get("VZ_TEST_TEMPLATES")
            if templates:
                (root / "vz/template").mkdir(parents=True, exist_ok=True)
                (root / "vz/template/cache").symlink_to(templates)
        try:
            if not args.only_share:
                times = lifecycle(env, args.rounds)
                speeds = throughput(env, args.mb)
            shared = sharing(env, root, parent, args.share, args.share_template) \
                if args.share else {}
            control = sharing(env, root, parent, args.share, args.share_template, "simfs") \
                if args.share else {}
        finally:
            subprocess.run(["umount", str(pool)], check=False)
    print(f"{'layout and verb':<16} {'median ms':>10}  (n={args.rounds})")
    for name, values in times.items():
        print(f"{name:<16} {statistics.median(values):10.1f}")
    print(f"\n{'inside a CT':<16} {'MiB/s':>10}  ({args.mb} MiB)")
    for name, value in speeds.items():
        print(f"{name:<16} {value:10.1f}")
    if shared:
        print(f"\n{args.share} CTs of {args.share_template}, KiB {'overlay':>10} {'simfs':>10}")
        for name, value in shared.items():
            print(f"{name:<42} {value:10.0f} {control.get(name, float('nan')):10.0f}")
    if args.plot and times:
        args.plot.write_text(strip_plot("vzctl per layout (busybox CT)", "ms",
                                        [(name, values) for name, values in times.items()]))


if __name__ == "__main__":
    main()
