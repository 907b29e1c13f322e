"""What the report says about the machine: CPU, memory, kernel, cgroup layout, versions of
vzcore and of every tool measured, date and load."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vzbench.common import REPO, loadavg, meminfo

VERSIONS = {
    "wrk": ["wrk", "-v"],
    "crun": ["crun", "--version"],
    "runc": ["runc", "--version"],
    "lxc": ["lxc-execute", "--version"],
    "systemd-nspawn": ["systemd-nspawn", "--version"],
    "unshare": ["unshare", "--version"],
}


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip() or "?"


def describe() -> dict[str, Any]:
    """The machine and the versions, as the report prints them."""
    import vzcore

    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = "?"
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    cgroup2 = [m[1] for m in mounts if m[2] == "cgroup2"]
    v1 = sum(1 for m in mounts if m[2] == "cgroup")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": platform.node(),
        "cpu": _cpu_model(), "cpus": os.cpu_count(),
        "memory_gib": round(meminfo()["MemTotal"] / 2**20, 1),
        "kernel": platform.release(),
        "debian": debian,
        "cgroups": (f"v1 ({v1} hierarchies)" if v1 else "v2")
        + (f" + cgroup2 at {', '.join(cgroup2)}" if v1 and cgroup2 else ""),
        "python": sys.version.split()[0] + f" ({sys.executable})",
        "vzcore": f"{vzcore.__version__}, commit {_git('rev-parse', '--short', 'HEAD')} "
                  f"({_git('rev-parse', '--abbrev-ref', 'HEAD')}), "
                  + ("an editable install (its import finders add to every vzctl start)"
                     if _timed_vzcore().is_relative_to(REPO / "vzcore")
                     else "installed non-editable"),
        "tools": {name: _first_line(argv) for name, argv in VERSIONS.items()},
        "load_start": loadavg(),
    }


def _timed_vzcore() -> Path:
    """Where the vzctl the suite times imports vzcore from: its interpreter, started
    outside the checkout (``python -m vzbench`` has the working directory, often the
    checkout, first on its own path)."""
    out = subprocess.run([sys.executable, "-c", "import vzcore; print(vzcore.__file__)"],
                         cwd="/", capture_output=True, text=True, check=False).stdout.strip()
    if not out:
        import vzcore

        out = vzcore.__file__
    return Path(out).resolve()
