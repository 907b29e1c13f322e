"""Time a command several times in a private mount namespace made for crun, and print the
seconds as JSON.  Run by the latency part as

    unshare --mount --propagation private -- python -m vzbench.timeloop RUNS -- ARGV...

crun refuses to run on a hybrid cgroup layout whose cgroup2 mount has a controller
enabled (this machine's has ``hugetlb``), and its v1 cgroupfs driver takes ``cgroupsPath``
from each hierarchy's root.  So, only in this namespace, the cgroup2 mount is unmounted and
each v1 hierarchy is replaced by a bind mount of the caller's own group in it: crun then
sees pure v1 and its groups land below the caller's, as runc's do
(see /work/shared/reference/peer-anchors.md, "What failed or needed a workaround")."""

from __future__ import annotations

import json
import subprocess
import sys
import time


def prepare() -> None:
    from vzcore.linux import cgroups

    found = cgroups.hierarchies()
    for hierarchy in found:
        if hierarchy.version == 2:
            subprocess.run(["umount", hierarchy.mount_point], check=True)
    for hierarchy in found:
        if hierarchy.version == 1 and hierarchy.own != "/":
            subprocess.run(["mount", "--bind", str(hierarchy.directory(hierarchy.own)),
                            hierarchy.mount_point], check=True)


def main() -> int:
    runs = int(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1:]
    prepare()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    print(json.dumps(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
