"""Resource controls re-verified on this host with busybox CTs: CPU shares between two CTs
on one CPU (cpuunits 1000:3000), a cpulimit of 25 %, a memory limit (``--ram 64M``: a
CT command allocating more is killed, its peak stays at the limit) and a disk limit (image
layout, ``--diskspace 64M``: writes stop with ENOSPC near 64 MiB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from population import installation
from vzbench.common import BIN, log, median, run, vzctl
from vzbench.memory import ct_group

MIB = 2**20
ALLOCATE = "x=$(head -c {mib}000000 /dev/zero | tr '\\0' a); echo ${{#x}}"
"""A busybox shell holding a string of about ``mib`` MB (it must sit in the shell's memory)."""


def _exec(env: dict[str, str], ctid: int, command: str) -> tuple[int, str]:
    result = run([str(BIN / "vzctl"), "--quiet", "exec", str(ctid), command], env=env, check=False)
    return result.returncode, (result.stdout + result.stderr).strip()


def cpu(env: dict[str, str], root: Path, window: float, repeat: int) -> dict[str, Any]:
    from vzcore.paths import Paths
    from vzcore_cpu.measure import busy_loops, cpus_used

    paths = Paths(root)
    for ctid, units in ((201, 1000), (202, 3000)):
        vzctl(env, "create", ctid, "--ostemplate", "busybox")
        vzctl(env, "set", ctid, "--cpumask", "0", "--cpuunits", units, "--save")
        vzctl(env, "start", ctid)
        vzctl(env, "exec", ctid, busy_loops(1))
    ratios = []
    for _ in range(repeat):
        used = cpus_used(paths, (201, 202), window)
        ratios.append(used[202] / used[201])
    for ctid in (201, 202):
        vzctl(env, "stop", "--fast", ctid)
        vzctl(env, "destroy", ctid)
    vzctl(env, "create", 203, "--ostemplate", "busybox")
    vzctl(env, "set", 203, "--cpulimit", "25", "--save")
    vzctl(env, "start", 203)
    vzctl(env, "exec", 203, busy_loops(1))
    percents = [100 * cpus_used(paths, [203], window)[203] for _ in range(repeat)]
    vzctl(env, "stop", "--fast", 203)
    vzctl(env, "destroy", 203)
    return {"cpuunits_ratio": median(ratios), "cpuunits_ratios": ratios, "cpuunits_target": 3.0,
            "cpulimit_percent": median(percents), "cpulimit_percents": percents,
            "cpulimit_target": 25.0, "window_s": window}


def memory_limit(env: dict[str, str], root: Path, parent: str) -> dict[str, Any]:
    vzctl(env, "create", 204, "--ostemplate", "busybox")
    vzctl(env, "set", 204, "--ram", "64M", "--save")
    vzctl(env, "start", 204)
    small_rc, small_out = _exec(env, 204, ALLOCATE.format(mib=16))
    big_rc, big_out = _exec(env, 204, ALLOCATE.format(mib=160))
    directory = ct_group(parent, root, 204)
    figures: dict[str, Any] = {"limit_mib": 64, "small_mib": 16, "small_rc": small_rc,
                               "small_ok": small_rc == 0 and small_out.endswith("16000000"),
                               "big_mib": 160, "big_rc": big_rc,
                               "big_refused": big_rc != 0 and not big_out.endswith("160000000")}
    if directory is not None:
        figures["limit_in_bytes_mib"] = int((directory / "memory.limit_in_bytes").read_text()) / MIB
        figures["peak_mib"] = int((directory / "memory.max_usage_in_bytes").read_text()) / MIB
        oom = dict(line.split() for line in (directory / "memory.oom_control").read_text().splitlines())
        figures["oom_kills"] = int(oom.get("oom_kill", 0))
    vzctl(env, "stop", "--fast", 204)
    vzctl(env, "destroy", 204)
    return figures


def disk_limit(env: dict[str, str]) -> dict[str, Any]:
    vzctl(env, "create", 205, "--ostemplate", "busybox", "--layout", "image", "--diskspace", "64M")
    vzctl(env, "start", 205)
    _rc, out = _exec(env, 205, "dd if=/dev/zero of=/fill bs=1M count=200 2>&1; echo rc=$?; "
                              "ls -l /fill; df -k /")
    size = 0
    for line in out.splitlines():
        words = line.split()
        if len(words) > 4 and words[-1] == "/fill":
            size = int(words[4])
    vzctl(env, "stop", "--fast", 205)
    vzctl(env, "destroy", 205)  # its image and loop device
    return {"limit_mib": 64, "asked_mib": 200, "written_mib": size / MIB,
            "enospc": "No space left" in out, "output": out[-600:]}


def measure(window: float, repeat: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with installation("vzbench-res") as (root, env, parent):
        for name, step in (("cpu", lambda: cpu(env, root, window, repeat)),
                           ("memory", lambda: memory_limit(env, root, parent)),
                           ("disk", lambda: disk_limit(env))):
            log(f"resources: {name}")
            try:
                result[name] = step()
            except (RuntimeError, OSError, ValueError, KeyError) as exc:
                result[name] = {"error": str(exc).splitlines()[0][:300]}
                log(f"resources: {name} failed: {result[name]['error']}")
    return result

