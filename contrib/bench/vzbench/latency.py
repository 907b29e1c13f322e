"""Start latency: ``vzctl start`` (to init running), ``vzctl exec`` round trip and ``vzctl
stop`` of a busybox CT, beside ``crun run``, ``runc run``, ``systemd-nspawn``,
``lxc-execute`` and an ``unshare`` + ``chroot`` floor running ``/bin/true`` in a copy of
the same busybox tree, and the interpreter floors vzctl stands on.

Every sample is a whole process timed from fork to exit.  The runtimes take turns, a few
samples each per round, so load from elsewhere hits them alike; medians are reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from population import installation
from vzbench.common import BENCH, BIN, Cleanup, log, median, run, timed, timed_cpu, vzctl

CT = 102
NEIGHBOUR = 103
"""A second busybox CT kept running meanwhile, as on any host with CTs: the shared lxcfs
and beancounters view daemon then run already, so the start timed is a CT's own, not
also the host's first (which starts both; see the report)."""
PER_ROUND = 3


def bundle(work: Path, rootfs: Path, cgroups_path: str) -> Path:
    """An OCI bundle running /bin/true in ``rootfs`` (``runc spec``'s namespaces: pid, net,
    ipc, uts, mount), read-only, no terminal."""
    directory = work / "bundle"
    directory.mkdir()
    run(["runc", "spec", "--bundle", str(directory)])
    config = json.loads((directory / "config.json").read_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["linux"]["cgroupsPath"] = cgroups_path
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def lxc_config(work: Path, rootfs: Path) -> Path:
    conf = work / "lxc.conf"
    conf.write_text(f"lxc.rootfs.path = dir:{rootfs}\nlxc.net.0.type = empty\n"
                    "lxc.apparmor.profile = unconfined\nlxc.cgroup.relative = 1\n"
                    "lxc.uts.name = vzbench\n")
    return conf


def commands(work: Path, rootfs: Path, parent: str) -> dict[str, list[str]]:
    """The peers' argv, each running /bin/true in its own copy of the busybox tree."""
    trees = {}
    for name in ("unshare", "oci", "nspawn", "lxc"):
        trees[name] = work / f"rootfs-{name}"
        run(["cp", "-a", str(rootfs), str(trees[name])])
    oci = bundle(work, trees["oci"], f"{parent}/oci")
    (work / "lxc").mkdir()
    return {
        "unshare + chroot": ["unshare", "--fork", "--pid", "--mount", "--net", "--uts", "--ipc",
                             f"--mount-proc={trees['unshare']}/proc", "chroot",
                             str(trees["unshare"]), "/bin/true"],
        "crun run": ["crun", "--root", str(work / "crun-state"), "run", "--bundle", str(oci),
                     "vzbench-crun"],
        "runc run": ["runc", "--root", str(work / "runc-state"), "run", "--bundle", str(oci),
                     "vzbench-runc"],
        "lxc-execute": ["lxc-execute", "-n", "vzbench", "-P", str(work / "lxc"), "-f",
                        str(lxc_config(work, trees["lxc"])), "--", "/bin/true"],
        "systemd-nspawn": ["systemd-nspawn", "-q", "--register=no", "--keep-unit",
                           "--private-network", "-D", str(trees["nspawn"]), "/bin/true"],
    }


def crun_samples(argv: list[str], runs: int) -> list[float]:
    """crun's samples, taken in the private mount namespace :mod:`vzbench.timeloop` makes."""
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    out = run(["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m",
               "vzbench.timeloop", str(runs), "--", *argv], env=env).stdout
    return [float(v) for v in json.loads(out)]


def measure(rounds: int, cleanup: Cleanup) -> dict[str, Any]:
    """Medians (ms) and samples of every runtime over ``rounds`` rounds."""
    work = Path(tempfile.mkdtemp(prefix="vzbench-latency-"))
    cleanup.push(f"remove {work}", lambda: shutil.rmtree(work, ignore_errors=True))
    parent = f"vzbench-lat-{uuid.uuid4().hex[:8]}"
    samples: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    failures: dict[str, str] = {}
    with installation("vzbench-latency") as (root, env, _parent):
        vzctl(env, "create", CT, "--ostemplate", "busybox")
        vzctl(env, "create", NEIGHBOUR, "--ostemplate", "busybox")
        peers = commands(work, root / f"vz/private/{CT}", parent)
        cleanup.push("remove the peers' cgroups", lambda: remove_groups(parent))
        floors = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python: import click, pluggy, attrs": [sys.executable, "-c",
                                                     "import click, pluggy, attrs"],
        }
        vz = str(BIN / "vzctl")
        # Timed as a user types them, without -q: click tries a short option as a long one
        # first, and the NoSuchOption it builds imports difflib for its suggestions (2-3 ms
        # of CPU a call, no use to anyone); the progress lines go to /dev/null.
        first = timed_cpu([vz, "start", str(CT)], env=env)  # also warms the caches
        vzctl(env, "stop", CT)
        vzctl(env, "start", NEIGHBOUR)

        def vz_cycle() -> None:
            for i in range(PER_ROUND):
                wall, used = timed_cpu([vz, "start", str(CT)], env=env)
                samples.setdefault("vzctl start", []).append(wall)
                cpu.setdefault("vzctl start", []).append(used)
                samples.setdefault("vzctl exec", []).append(
                    timed([vz, "exec", str(CT), "/bin/true"], env=env))
                stop = ["stop"] if i % 2 == 0 else ["stop", "--fast"]
                samples.setdefault(f"vzctl {' '.join(stop)}", []).append(
                    timed([vz, *stop, str(CT)], env=env))

        steps: list[tuple[str, Callable[[], None]]] = [("vzctl", vz_cycle)]
        for label, argv in [*peers.items(), *floors.items()]:
            steps.append((label, _sampler(label, argv, samples, cpu)))
        for r in range(rounds):
            order = steps if r % 2 == 0 else list(reversed(steps))
            for label, step in order:
                if label in failures:
                    continue
                try:
                    step()
                except (RuntimeError, subprocess.CalledProcessError, json.JSONDecodeError) as exc:
                    failures[label] = str(exc).splitlines()[0][:300]
                    log(f"{label} failed: {failures[label]}")
            log(f"latency round {r + 1}/{rounds} done")
        profile = hook_profile(env)
        vzctl(env, "stop", "--fast", NEIGHBOUR, check=False)
    medians = {label: median(values) * 1000 for label, values in samples.items()}
    return {"medians_ms": medians, "samples_ms": {k: [v * 1000 for v in vs]
                                                   for k, vs in samples.items()},
            "failures": failures, "runs": {k: len(v) for k, v in samples.items()},
            "cpu_medians_ms": {label: median(values) * 1000 for label, values in cpu.items()},
            "first_start_ms": {"wall": first[0] * 1000, "cpu": first[1] * 1000},
            "profile": profile}


def _sampler(label: str, argv: list[str], samples: dict[str, list[float]],
             cpu: dict[str, list[float]]) -> Callable[[], None]:
    def step() -> None:
        if label == "crun run":
            samples.setdefault(label, []).extend(crun_samples(argv, PER_ROUND))
        else:
            for _ in range(PER_ROUND):
                wall, used = timed_cpu(argv)
                samples.setdefault(label, []).append(wall)
                cpu.setdefault(label, []).append(used)
    return step


def hook_profile(env: dict[str, str]) -> dict[str, float]:
    """One ``vzctl start`` through contrib/bench/hooktimes.py: each plugin's hook time and
    the whole run (ms); and one under ``-X importtime``: the time its imports took
    (``imports``, ms, the sum of every module's own time)."""
    profile: dict[str, float] = {}
    imports = subprocess.run([sys.executable, "-X", "importtime", str(BIN / "vzctl"), "--quiet",
                              "start", str(CT)], env=env, capture_output=True, text=True, check=False)
    vzctl(env, "stop", "--fast", CT, check=False)
    profile["imports"] = sum(int(line.split("|")[0].split(":")[1]) for line in
                             imports.stderr.splitlines() if line.startswith("import time:")
                             and line.split("|")[0].split(":")[1].strip().isdigit()) / 1000
    result = subprocess.run([sys.executable, str(BENCH / "hooktimes.py"), "--quiet", "start",
                             str(CT)], env=env, capture_output=True, text=True, check=False)
    vzctl(env, "stop", "--fast", CT, check=False)
    for line in result.stderr.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == "hooktime":
            key = "total" if words[1] == "total" else words[1]
            profile[key] = profile.get(key, 0.0) + float(words[3])
    return profile


def remove_groups(parent: str) -> None:
    """The groups runc and crun made below ``parent`` (relative to ours), and ``parent``."""
    from population import remove_cgroup_parent

    remove_cgroup_parent(parent)
