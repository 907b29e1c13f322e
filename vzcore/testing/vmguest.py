"""The guest side of a VM test batch: ``python -m vzcore.testing.vmguest WORKDIR``.

Runs as root (PID 1's child) inside the VM that :class:`vzcore.testing.vm.VmBatch` booted,
with the host's file system shared read-only and ``WORKDIR`` writable.  It records what
this kernel is, mounts the host's code snapshot over the original paths, and runs pytest
on the requested tests in a network namespace of its own (as ``contrib/test.sh`` does on
the host), writing each result to ``WORKDIR/report.jsonl`` as it comes.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRATCH = Path("/run/vzcore-vm")
"""tmpfs in the guest (vm-run's /tmp is an overlay above the host's /tmp)."""


def _facts() -> dict[str, Any]:
    from vzcore.linux import cgroups

    found = cgroups.hierarchies()
    controllers: set[str] = set()
    for hierarchy in found:
        controllers |= hierarchy.controllers
    with open("/proc/cmdline") as f:
        cmdline = f.read().strip()
    return {
        "release": platform.release(),
        "version": platform.version(),
        "cgroup_mode": cgroups.mode(found),
        "controllers": sorted(controllers),
        "own_cgroup": {h.key: h.own for h in found},
        "cmdline": cmdline,
    }


def _mount_layers(workdir: Path, layers: list[dict[str, str]]) -> list[str]:
    """Unpack the snapshot into tmpfs and put each part over its path; returns problems
    (the tests still run without a layer, only slower)."""
    problems = []
    unpacked = SCRATCH / "layers"
    unpacked.mkdir(parents=True, exist_ok=True)
    # cat reads the 9p file in big chunks; tar's own small reads took three times as long.
    tar = subprocess.run(["sh", "-c", 'cat "$1" | tar -xf - -C "$2"', "sh",
                          str(workdir / "layers.tar"), str(unpacked)],
                         capture_output=True, text=True, check=False)
    if tar.returncode != 0:
        return [f"unpacking the snapshot failed: {tar.stderr.strip()}"]
    for layer in layers:
        lower = unpacked / layer["name"]
        target = layer["target"]
        if not lower.is_dir() or not os.path.isdir(target):
            continue
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}:{target}", target],
            capture_output=True, text=True, check=False)
        if mounted.returncode != 0:
            problems.append(f"overlay on {target}: {mounted.stderr.strip()}")
    return problems


def main(workdir: Path) -> int:
    request = json.loads((workdir / "request.json").read_text())
    problems = _mount_layers(workdir, request["layers"])
    facts = {**_facts(), "snapshot_problems": problems}
    (workdir / "guest.json").write_text(json.dumps(facts, indent=1))
    for problem in facts["snapshot_problems"]:
        print(f"vmguest: {problem}", flush=True)
    print(f"vmguest: Linux {facts['release']}, cgroup mode {facts['cgroup_mode']}, "
          f"{len(request['nodeids'])} tests", flush=True)

    tmp = SCRATCH / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # setuptools' distutils-precedence.pth would import its shim, from 9p, in every
        # Python process; the tests need the standard library's distutils if any.
        "SETUPTOOLS_USE_DISTUTILS": "stdlib",
        "VZ_TEST_GUEST": request["kernel"],
        **request["env"],
    }
    argv = [sys.executable, "-m", "pytest", "--rootdir", request["rootdir"],
            "--basetemp", str(SCRATCH / "pytest"), "--kernel", "host",
            "--vz-report", str(workdir / "report.jsonl"), "-p", "no:cacheprovider", "-rfEs"]
    if request.get("inifile"):
        argv += ["-c", request["inifile"]]
    argv += [*request.get("pytest_args", []), *request["nodeids"]]
    # Like contrib/test.sh: a network namespace of the run's own, with lo up.
    wrapped = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    status = subprocess.run(wrapped, cwd=request["rootdir"], env=env, check=False).returncode
    (workdir / "exit.json").write_text(json.dumps({"status": status}))
    return status


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m vzcore.testing.vmguest WORKDIR")
    sys.exit(main(Path(sys.argv[1])))
