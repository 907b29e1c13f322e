"""held, maxheld and failcnt of a running CT, from the kernel's own counters.

Where a cgroup counts a resource, its counters are used (memory and pids controllers;
file names differ between cgroup v1 and v2).  Where none does, :mod:`.procscan` reads
``/proc``.  ``maxheld`` is the kernel's peak where it keeps one, else ``None`` (the
caller then keeps the highest value it has seen, :mod:`.peaks`).  ``failcnt`` is the
kernel's count of refused charges where it keeps one, else 0.  docs/beancounters.md has
the table.
"""

from __future__ import annotations

from collections.abc import Collection

import attrs

from vzcore.linux.cgroups import CgroupSet
from vzcore.values import PAGE_SIZE
from vzcore_beancounters import procscan
from vzcore_beancounters.resources import RESOURCES


@attrs.frozen
class Usage:
    """One beancounter's live counters (``maxheld`` ``None``: no kernel peak)."""

    held: int = 0
    maxheld: int | None = None
    failcnt: int = 0


def _pages(value: int | None) -> int | None:
    return None if value is None else value // PAGE_SIZE


def _kernel_v2(stat: dict[str, int]) -> int:
    if "kernel" in stat:
        return stat["kernel"]
    parts = ("kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock", "vmalloc", "slab")
    return sum(stat.get(p, 0) for p in parts)


def _oom_kills(text: str | None) -> int:
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def memory_v1(cg: CgroupSet) -> dict[str, Usage]:
    """physpages, swappages, kmemsize, shmpages, oomguarpages' failcnt and the shared TCP
    buffer failcnt from v1's memory controller."""
    usage = cg.read_int("memory", "memory.usage_in_bytes") or 0
    memsw = cg.read_int("memory", "memory.memsw.usage_in_bytes")
    stat = cg.read_keyed("memory", "memory.stat")
    tcp_fail = cg.read_int("memory", "memory.kmem.tcp.failcnt") or 0
    ram_fail = cg.read_int("memory", "memory.failcnt") or 0
    total_fail = cg.read_int("memory", "memory.memsw.failcnt") or 0
    if cg.read_int("memory", "memory.memsw.limit_in_bytes") == cg.read_int(
            "memory", "memory.limit_in_bytes"):
        # No swap allowed: the kernel checks RAM+swap first and refuses there, so the
        # RAM limit's own counter never moves; every such refusal is a RAM refusal.
        ram_fail += total_fail
    return {
        "physpages": Usage(usage // PAGE_SIZE,
                           _pages(cg.read_int("memory", "memory.max_usage_in_bytes")), ram_fail),
        "swappages": Usage(max(0, (memsw or usage) - usage) // PAGE_SIZE, None, total_fail),
        "kmemsize": Usage(cg.read_int("memory", "memory.kmem.usage_in_bytes") or 0,
                          cg.read_int("memory", "memory.kmem.max_usage_in_bytes"),
                          cg.read_int("memory", "memory.kmem.failcnt") or 0),
        "shmpages": Usage(stat.get("total_shmem", stat.get("shmem", 0)) // PAGE_SIZE),
        "oomguarpages": Usage(failcnt=_oom_kills(cg.try_read("memory", "memory.oom_control"))),
        "tcpsndbuf": Usage(failcnt=tcp_fail),
        "tcprcvbuf": Usage(failcnt=tcp_fail),
    }


def memory_v2(cg: CgroupSet) -> dict[str, Usage]:
    """The same from v2's memory controller (``memory.peak`` needs Linux 5.19,
    ``memory.swap.peak`` 6.5)."""
    stat = cg.read_keyed("memory", "memory.stat")
    events = cg.read_keyed("memory", "memory.events")
    swap_events = cg.read_keyed("memory", "memory.swap.events")
    return {
        "physpages": Usage((cg.read_int("memory", "memory.current") or 0) // PAGE_SIZE,
                           _pages(cg.read_int("memory", "memory.peak")), events.get("max", 0)),
        "swappages": Usage((cg.read_int("memory", "memory.swap.current") or 0) // PAGE_SIZE,
                           _pages(cg.read_int("memory", "memory.swap.peak")),
                           swap_events.get("max", 0) + swap_events.get("fail", 0)),
        "kmemsize": Usage(_kernel_v2(stat)),
        "shmpages": Usage(stat.get("shmem", 0) // PAGE_SIZE),
        "dcachesize": Usage(stat.get("slab_reclaimable", 0)),
        "oomguarpages": Usage(failcnt=events.get("oom_kill", 0)),
    }


def pids_usage(cg: CgroupSet) -> Usage:
    """numproc from the pids controller (``pids.peak`` needs Linux 6.13); without the
    controller, the tasks listed in the CT's groups."""
    if not cg.has("pids"):
        return Usage(cg.task_count())
    return Usage(cg.read_int("pids", "pids.current") or 0, cg.read_int("pids", "pids.peak"),
                 cg.read_keyed("pids", "pids.events").get("max", 0))


def _locks(pids: set[int]) -> int:
    try:
        with open("/proc/locks") as f:
            return procscan.count_locks(f.read(), pids)
    except OSError:
        return 0


SOURCES = {
    "memory": ("kmemsize", "shmpages", "physpages", "swappages", "oomguarpages", "dcachesize",
               "tcpsndbuf", "tcprcvbuf"),
    "pids": ("numproc",),
    "processes": ("lockedpages", "privvmpages", "vmguarpages", "numsiginfo", "numfile", "numpty"),
    "locks": ("numflock",),
    "sockets": ("numtcpsock", "numothersock"),
    "queues": ("tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf"),
}
"""Where each beancounter's usage is read from; a reader asking for some beancounters
reads only their sources."""


def read(cg: CgroupSet, init_pid: int, wanted: Collection[str] | None = None) -> dict[str, Usage]:
    """The usage of the running CT whose groups are ``cg``: every beancounter, or those in
    ``wanted`` (the others read as 0)."""
    names = {r.name for r in RESOURCES} if wanted is None else set(wanted)
    needed = {source for source, covered in SOURCES.items() if names.intersection(covered)}
    result: dict[str, Usage] = {r.name: Usage() for r in RESOURCES}
    if "memory" in needed and cg.has("memory"):
        result.update(memory_v1(cg) if cg.version == 1 else memory_v2(cg))
        phys, swap = result["physpages"], result["swappages"]
        result["oomguarpages"] = attrs.evolve(result["oomguarpages"], held=phys.held + swap.held)
    if "pids" in needed:
        result["numproc"] = pids_usage(cg)
    found = set(cg.pids()) if needed & {"processes", "locks"} else set()
    if "processes" in needed:
        processes = procscan.scan_processes(sorted(found))
        private = processes.private_kb * 1024 // PAGE_SIZE
        result.update({
            "lockedpages": Usage(processes.locked_kb * 1024 // PAGE_SIZE),
            "privvmpages": Usage(private),
            "vmguarpages": Usage(private),
            "numpty": Usage(len(processes.ptys)),
            "numsiginfo": Usage(processes.pending_signals),
            "numfile": Usage(processes.open_files),
        })
    if "locks" in needed:
        result["numflock"] = Usage(_locks(found))
    if "sockets" in needed:
        sockets = procscan.scan_sockets(init_pid)
        result["numtcpsock"] = Usage(sockets.tcp_sockets)
        result["numothersock"] = Usage(sockets.other_sockets)
    if "queues" in needed:
        queues = procscan.scan_queues(init_pid)
        result.update({
            "tcpsndbuf": attrs.evolve(result["tcpsndbuf"], held=queues.tcp_send),
            "tcprcvbuf": attrs.evolve(result["tcprcvbuf"], held=queues.tcp_receive),
            "othersockbuf": Usage(queues.other_send),
            "dgramrcvbuf": Usage(queues.dgram_receive),
        })
    return result
