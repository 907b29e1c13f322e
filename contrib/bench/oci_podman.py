"""``podman run --rm IMG true`` with vzcore-oci, crun and runc as the runtime, in one run.

Run as root from the repository (it re-executes itself in a network namespace of its own):

    .venv/bin/python contrib/bench/oci_podman.py [--runs 20] [--runtimes vzcore-oci,crun,runc]
                                                 [--vzcore-oci PATH]

The image is the tests' busybox image (tests/oci/harness.py: from busybox-static, imported
with ``podman import``); podman has the tests' private containers.conf (cgroups disabled,
no network) and runs in their private mount namespace. Each round runs every runtime once,
in turn, so load from the machine's other work falls on all of them alike; one warm-up
round is not counted. It prints the median, lowest and 90th percentile wall time of the
``podman`` command per runtime, and the load average.

runc 1.1.5 knows no ``--cgroup-manager disabled`` (podman passes it with cgroups disabled),
so it gets a wrapper that drops the flag, and then makes a cgroup per container below its
caller's own (feasibility B's caveat: this machine's cgroup tree is not ours). The
benchmark therefore runs runc's podman from groups of its own, ``vzcore-bench-oci`` below
its own in every v1 hierarchy, which runc's groups nest in, and removes them at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "tests" / "oci"))

from harness import (  # noqa: E402
    IMAGE,
    PROJECT,
    MountNamespace,
    Podman,
    build_rootfs,
    rootfs_tar,
    runtime_name,
)
from population import reexec_in_netns  # noqa: E402

BENCH_GROUP = "vzcore-bench-oci"


def runc_wrapper(workdir: Path) -> Path:
    """runc without the ``--cgroup-manager disabled`` podman gives it (runc 1.1 refuses it),
    named ``runc`` so podman's logs and this table say runc."""
    wrapper = workdir / "runc-wrapper" / "runc"
    wrapper.parent.mkdir()
    wrapper.write_text('#!/bin/sh\n'
                       'skip=\n'
                       'for a; do shift\n'
                       '    if [ -n "$skip" ]; then skip=; continue; fi\n'
                       '    case "$a" in --cgroup-manager) skip=1 ;; --cgroup-manager=*) ;;\n'
                       '                 *) set -- "$@" "$a" ;; esac\n'
                       'done\n'
                       'exec /usr/sbin/runc "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def make_groups() -> list[Path]:
    """``vzcore-bench-oci`` below this process's own group in every v1 hierarchy (made)."""
    made = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            continue  # the cgroup2 mount (podman runs where it is hidden)
        mount = Path("/sys/fs/cgroup") / (controllers.replace("name=", ""))
        if not mount.is_dir():
            continue
        group = mount / path.lstrip("/") / BENCH_GROUP
        group.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset group starts empty
            if (group / name).exists() and not (group / name).read_text().strip():
                (group / name).write_text((group.parent / name).read_text())
        made.append(group)
    return made


def move_to(groups: list[Path]) -> None:
    """Move this process into *groups* (its children are forked there)."""
    for group in groups:
        (group / "cgroup.procs").write_text(str(os.getpid()))


def remove_groups(groups: list[Path]) -> None:
    """Remove our groups (runc removed its own at delete)."""
    for group in groups:
        try:
            group.rmdir()
        except OSError as e:
            print(f"oci_podman: could not remove {group}: {e}", file=sys.stderr)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--runtimes", default="vzcore-oci,crun,runc")
    parser.add_argument("--vzcore-oci", type=Path, default=PROJECT / ".venv" / "bin" / "vzcore-oci")
    args = parser.parse_args()
    reexec_in_netns()

    with tempfile.TemporaryDirectory(prefix="oci-bench-") as tmp:
        workdir = Path(tmp)
        runtimes: dict[str, Path] = {}
        for name in args.runtimes.split(","):
            if name == "vzcore-oci":
                runtimes[name] = args.vzcore_oci.resolve()
            elif name == "runc":
                runtimes[name] = runc_wrapper(workdir)
            else:
                runtimes[name] = Path("/usr/bin") / name
        groups = make_groups()
        home = [g.parent for g in groups]
        mountns = MountNamespace()
        podman = Podman(workdir / "podman", mountns, list(runtimes.values()))
        try:
            tar = rootfs_tar(build_rootfs(workdir / "rootfs"), workdir / "rootfs.tar")
            podman.import_image(tar)
            times: dict[str, list[float]] = {name: [] for name in runtimes}
            for round_ in range(args.runs + 1):
                for name, runtime in runtimes.items():
                    argv = podman.argv(runtime, "run", "--rm", IMAGE, "true")
                    if name == "runc":  # only runc's podman runs from our groups
                        move_to(groups)
                    started = time.perf_counter()
                    proc = subprocess.run(argv, env=podman.env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True)
                    elapsed = time.perf_counter() - started
                    move_to(home)
                    if proc.returncode != 0:
                        raise SystemExit(f"oci_podman: {name}: podman exited {proc.returncode}: "
                                         f"{proc.stderr.strip()}")
                    if round_:  # the first round warms caches up
                        times[name].append(elapsed)
        finally:
            podman.cleanup()
            mountns.close()
            move_to(home)
            remove_groups(groups)

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"podman run --rm {IMAGE} true, {args.runs} runs each, interleaved; load {load}")
    print("| runtime | median | lowest | p90 |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(f"| {runtime_name(runtimes[name])} | {statistics.median(values) * 1000:.0f} ms | "
              f"{min(values) * 1000:.0f} ms | {percentile(values, 0.9) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
