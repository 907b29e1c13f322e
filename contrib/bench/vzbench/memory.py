"""Where a population's memory goes: /proc/meminfo before and after, the CTs' memory
cgroups (anonymous, page cache, kernel), and each CT process's PSS grouped by program."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from vzbench.common import meminfo

from vzcore.linux.procfs import command_name

MIB = 2**20


def memory_parent(parent: str) -> Path | None:
    """``CGROUP_PARENT``'s directory in the memory hierarchy (v1), or None."""
    from vzcore.linux import cgroups

    for hierarchy in cgroups.hierarchies():
        if "memory" in hierarchy.controllers and hierarchy.version == 1:
            return hierarchy.directory(cgroups.resolve_parent(parent, hierarchy))
    return None


def cap_parent(parent: str, mib: float) -> None:
    """Cap ``CGROUP_PARENT``'s memory (v1 ``memory.limit_in_bytes``) at ``mib`` MiB, so a
    population that outgrows the machine is OOM-killed inside its own groups, never a host
    process (a no-op without a v1 memory hierarchy)."""
    directory = memory_parent(parent)
    if directory is None:
        return
    directory.mkdir(exist_ok=True)
    (directory / "memory.limit_in_bytes").write_text(f"{int(mib * MIB)}\n")


def ct_group(parent: str, root: Path, ctid: int) -> Path | None:
    """CT ``ctid``'s group in the memory hierarchy (installation ``root``)."""
    from vzcore.ctgroups import group_name
    from vzcore.paths import Paths

    directory = memory_parent(parent)
    return None if directory is None else directory / group_name(Paths(root), ctid)


def group_pids(directory: Path) -> list[int]:
    """Every process in a v1 group and its descendants."""
    pids: list[int] = []
    for procs in directory.rglob("cgroup.procs"):
        try:
            pids += [int(p) for p in procs.read_text().split()]
        except OSError:
            continue
    return pids


def stat(directory: Path) -> dict[str, int]:
    """memory.stat of a v1 group, in bytes."""
    values = {}
    for line in (directory / "memory.stat").read_text().splitlines():
        name, value = line.split()
        values[name] = int(value)
    return values


def smaps(pid: int) -> dict[str, int] | None:
    """smaps_rollup of a process in KiB (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines()[1:]:
        name, rest = line.split(":", 1)
        values[name] = int(rest.split()[0])
    return values


def host_helpers(root: Path) -> list[int]:
    """Host processes serving the installation at ``root`` outside any CT (the daemons that
    vzctl leaves running: the beancounters view, lxcfs): their command line names it."""
    name = str(root).encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if name in cmdline:
                found.append(int(entry))
    return found


def breakdown(parent: str, ctids: list[int], before: dict[str, int],
              root: Path) -> dict[str, Any]:
    """Host memory per running CT and where it goes, for the CTs ``ctids`` (all running
    below ``CGROUP_PARENT`` ``parent``), against ``before`` (meminfo before they started)."""
    after = meminfo()
    count = len(ctids)

    def delta(name: str) -> float:
        return (before[name] - after[name] if name == "MemAvailable"
                else after[name] - before[name]) / 1024 / count

    result: dict[str, Any] = {
        "cts": count,
        "memavailable_drop_mib_per_ct": delta("MemAvailable"),
        "slab_mib_per_ct": delta("Slab"),
        "kernel_stack_mib_per_ct": delta("KernelStack"),
        "page_tables_mib_per_ct": delta("PageTables"),
    }
    directory = memory_parent(parent)
    # The CTs' own groups only: the parent also holds the host daemons' groups (lxcfs, the
    # beancounters view), counted below as host helpers, not as the CTs' memory.
    groups = [g for g in (ct_group(parent, root, ctid) for ctid in ctids) if g and g.is_dir()]
    if directory is not None and groups:
        st: dict[str, int] = defaultdict(int)
        usage = kmem = 0
        for group in groups:
            for name, value in stat(group).items():
                st[name] += value
            usage += int((group / "memory.usage_in_bytes").read_text())
            kmem_file = group / "memory.kmem.usage_in_bytes"
            kmem += int(kmem_file.read_text()) if kmem_file.exists() else 0
        result.update({
            "memcg_usage_mib_per_ct": usage / MIB / count,
            "memcg_anon_mib_per_ct": st.get("total_rss", 0) / MIB / count,
            "memcg_cache_mib_per_ct": st.get("total_cache", 0) / MIB / count,
            "memcg_mapped_file_mib_per_ct": st.get("total_mapped_file", 0) / MIB / count,
            "memcg_kmem_mib_per_ct": kmem / MIB / count,
        })
        # the part of the kernel's growth no CT group was charged for (namespaces, cgroups,
        # the venet pairs' objects made by vzctl from the host side...)
        kernel = (result["slab_mib_per_ct"] + result["kernel_stack_mib_per_ct"]
                  + result["page_tables_mib_per_ct"])
        result["kernel_mib_per_ct"] = kernel
        result["kernel_uncharged_mib_per_ct"] = max(kernel - result["memcg_kmem_mib_per_ct"], 0.0)
        per_program: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        processes = 0
        for pid in (pid for group in groups for pid in group_pids(group)):
            rollup = smaps(pid)
            if rollup is None:
                continue
            processes += 1
            program = per_program[command_name(pid)]
            program["processes"] += 1
            program["pss_mib"] += rollup.get("Pss", 0) / 1024
            program["pss_anon_mib"] += rollup.get("Pss_Anon", 0) / 1024
            program["rss_mib"] += rollup.get("Rss", 0) / 1024
        result["processes_per_ct"] = processes / count
        result["programs"] = {name: {k: v / count for k, v in figures.items()}
                              for name, figures in sorted(per_program.items(),
                                                          key=lambda kv: -kv[1]["pss_mib"])}
        result["pss_mib_per_ct"] = sum(p["pss_mib"] for p in result["programs"].values())
        # the figure to hold against the target: what the CT's processes use (shared pages
        # divided among their users) plus the kernel memory made for the CT, charged or not;
        # page cache no process maps (logs written, files read once) is left out: reclaimable
        result["estimate_mib_per_ct"] = (result["pss_mib_per_ct"] + result["memcg_kmem_mib_per_ct"]
                                         + result["kernel_uncharged_mib_per_ct"])
    helpers = [s for s in (smaps(pid) for pid in host_helpers(root)) if s]
    result["host_helpers"] = len(helpers)
    result["host_helpers_pss_mib"] = sum(s.get("Pss", 0) for s in helpers) / 1024
    return result
