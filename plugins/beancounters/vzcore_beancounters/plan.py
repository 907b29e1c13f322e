"""Beancounters to kernel settings: the mapping of docs/beancounters.md as data (pure).

:func:`plan` turns a CT's :class:`~vzcore_beancounters.limits.Limits` into a
:class:`Plan`: cgroup files to write (per cgroup version), per-process resource limits,
IPC sysctls of the CT's IPC namespace, the devpts ``max=`` and the ``/dev/shm`` size.
Applying it is :mod:`vzcore_beancounters.apply`'s job.  Where the kernel has one threshold
and OpenVZ two, ordinary allocations failed at the barrier (OpenVZ's "hard" charges), so
counts use the barrier; memory uses the limit (VSwap puts RAM and swap in the limit and
leaves the barrier at 0).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import attrs

from vzcore.defaults import DEV_SHM_SIZE
from vzcore.values import PAGE_SIZE
from vzcore_beancounters.limits import Limits, add, scale
from vzcore_beancounters.resources import UNLIMITED

PID_MAX_LIMIT = 4 * 1024 * 1024
"""``pids.max`` takes at most the kernel's PID_MAX_LIMIT; more means "max"."""

PTY_MAX = 1 << 20
"""NR_UNIX98_PTY_MAX: devpts ``max=`` above this is refused."""

SHM_DEFAULTS = {"kernel.shmall": 18446744073692774399, "kernel.shmmax": 18446744073692774399,
                "kernel.shmmni": 4096}
"""A new IPC namespace's values (ULONG_MAX - 2^24, and 4096 segments)."""

SHM_DEFAULT_SIZE = DEV_SHM_SIZE
"""The size of /dev/shm without shmpages (the core's default, which the isolation plugin
mounts), restored when shmpages becomes unlimited on a running CT."""

RLIM_INFINITY = -1  # resource.RLIM_INFINITY on Linux


@attrs.frozen
class CgroupWrite:
    """One cgroup file write; ``value`` ``None`` means "no limit".

    :ivar resource: the beancounter it enforces (for error messages).
    :ivar depends: every beancounter its value is computed from (a live change of any of
        them rewrites it).
    :ivar optional: the host's kernel may lack the file (swap accounting off, kmem removed):
        then the beancounter is accounted only.
    :ivar verify: read the value back; a kernel that ignores the file (kmem on 6.1+) keeps
        "max" and the beancounter counts as accounted only.
    """

    controller: str
    filename: str
    value: int | None
    resource: str
    depends: tuple[str, ...] = ()
    optional: bool = False
    verify: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        return self.depends or (self.resource,)


@attrs.frozen
class Plan:
    """What the kernel must be told for one CT's beancounters.

    :ivar cgroup: writes, in order (``apply`` reorders v1's memory and memsw limits as the
        kernel requires).
    :ivar rlimits: ``RLIMIT_*`` name -> (soft, hard); -1 is RLIM_INFINITY.
    :ivar sysctls: IPC namespace sysctl -> value.
    :ivar devpts_max: ``max=`` of the CT's devpts, or ``None`` to leave it.
    :ivar shm_size: ``size=`` of the CT's /dev/shm (bytes or a tmpfs percentage), or ``None``.
    """

    cgroup: tuple[CgroupWrite, ...] = ()
    rlimits: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)
    sysctls: Mapping[str, int] = attrs.field(factory=dict)
    devpts_max: int | None = None
    shm_size: int | str | None = None


def _bytes(pages: int) -> int | None:
    value = scale(pages, PAGE_SIZE)
    return None if value >= UNLIMITED else value


def _finite(value: int) -> int | None:
    return None if value >= UNLIMITED else value


def cgroup_writes(limits: Limits, version: int, host_swap: bool = True) -> list[CgroupWrite]:
    """The cgroup files for ``limits`` on cgroup ``version`` (1 or 2), every one included
    (unlimited as ``None``).

    On v1 a host without swap gets no RAM+swap limit: there is no swap to limit, and with
    that limit set the kernel refuses charges at it first and counts none of them (since
    6.12 only ``memory.failcnt`` is counted), so physpages' failcnt would never move.
    """
    phys, swap = limits["physpages"], limits["swappages"]
    ram = _bytes(phys.limit)
    soft = _bytes(phys.barrier) if 0 < phys.barrier < phys.limit else None
    numproc = limits["numproc"].barrier
    pids = CgroupWrite("pids", "pids.max", numproc if numproc < PID_MAX_LIMIT else None, "numproc")
    if version == 1:
        tcp = add(limits["tcpsndbuf"].limit, limits["tcprcvbuf"].limit)
        memsw = [CgroupWrite("memory", "memory.memsw.limit_in_bytes",
                             _bytes(add(phys.limit, swap.limit)), "swappages",
                             ("physpages", "swappages"), optional=True)] if host_swap else []
        return [
            CgroupWrite("memory", "memory.limit_in_bytes", ram, "physpages"),
            *memsw,
            CgroupWrite("memory", "memory.soft_limit_in_bytes", soft, "physpages"),
            CgroupWrite("memory", "memory.kmem.limit_in_bytes", _finite(limits["kmemsize"].limit),
                        "kmemsize", optional=True, verify=True),
            CgroupWrite("memory", "memory.kmem.tcp.limit_in_bytes", _finite(tcp), "tcpsndbuf",
                        ("tcpsndbuf", "tcprcvbuf"), optional=True, verify=True),
            pids,
        ]
    return [
        CgroupWrite("memory", "memory.max", ram, "physpages"),
        CgroupWrite("memory", "memory.swap.max", _bytes(swap.limit), "swappages", optional=True),
        CgroupWrite("memory", "memory.high", soft, "physpages"),
        pids,
    ]


def _rlimit(soft: int, hard: int, factor: int = 1, cap: int | None = None) -> tuple[int, int]:
    def one(value: int) -> int:
        value = scale(value, factor)
        if cap is not None:
            return min(value, cap)
        return RLIM_INFINITY if value >= UNLIMITED else value

    return (one(soft), one(hard))


RLIMIT_OF = {"RLIMIT_NOFILE": "numfile", "RLIMIT_MEMLOCK": "lockedpages",
             "RLIMIT_SIGPENDING": "numsiginfo"}
"""The beancounters enforced by a per-process resource limit."""


def rlimits(limits: Limits, nr_open: int) -> dict[str, tuple[int, int]]:
    """Per-process limits: soft = barrier (ordinary use), hard = limit (what a process may
    raise its soft limit to without CAP_SYS_RESOURCE).  Unset when both are unlimited."""
    scaling = {"RLIMIT_NOFILE": (1, nr_open), "RLIMIT_MEMLOCK": (PAGE_SIZE, None),
               "RLIMIT_SIGPENDING": (1, None)}
    result = {}
    for rlimit, name in RLIMIT_OF.items():
        factor, cap = scaling[rlimit]
        pair = limits[name]
        if pair.barrier < UNLIMITED or pair.limit < UNLIMITED:
            result[rlimit] = _rlimit(pair.barrier, pair.limit, factor, cap)
    return result


def shm_sysctls(limits: Limits) -> dict[str, int]:
    """The IPC namespace's SysV shared memory limits from shmpages' barrier."""
    pages = limits["shmpages"].barrier
    if pages >= UNLIMITED:
        return dict(SHM_DEFAULTS)
    return {"kernel.shmall": pages, "kernel.shmmax": scale(pages, PAGE_SIZE),
            "kernel.shmmni": max(1, min(SHM_DEFAULTS["kernel.shmmni"], pages))}


def plan(limits: Limits, version: int, *, nr_open: int, host_swap: bool = True,
         changed: Collection[str] | None = None) -> Plan:
    """The settings for ``limits``.

    :param version: the CT's cgroup version (1 or 2).
    :param nr_open: ``fs.nr_open``, the ceiling of RLIMIT_NOFILE.
    :param host_swap: whether the host has swap (see :func:`cgroup_writes`).
    :param changed: for a live change, the beancounters that changed: only their settings
        are included, unlimited ones too (to lift a limit).  ``None`` (a start) includes
        every setting that is not the kernel's default for a new CT.
    """
    starting = changed is None
    wanted = set(changed or ())

    def include(*names: str) -> bool:
        return starting or bool(wanted.intersection(names))

    writes = []
    for write in cgroup_writes(limits, version, host_swap):
        if not include(*write.sources):
            continue
        if starting and write.value is None:
            continue  # a new group starts without limits
        writes.append(write)
    current = rlimits(limits, nr_open)
    limits_now = {}
    for rlimit, name in RLIMIT_OF.items():
        if rlimit in current and include(name):
            limits_now[rlimit] = current[rlimit]
        elif not starting and name in wanted:
            # Lifted to unlimited: rlimits() leaves it out, but a running CT must hear it.
            limits_now[rlimit] = (nr_open, nr_open) if rlimit == "RLIMIT_NOFILE" else (
                RLIM_INFINITY, RLIM_INFINITY)
    shm = limits["shmpages"].barrier
    sysctls = shm_sysctls(limits) if include("shmpages") and not (starting and shm >= UNLIMITED) else {}
    shm_size: int | str | None = None
    if include("shmpages") and not (starting and shm >= UNLIMITED):
        shm_size = SHM_DEFAULT_SIZE if shm >= UNLIMITED else scale(shm, PAGE_SIZE)
    pty = limits["numpty"].barrier
    devpts_max = None
    if include("numpty") and not (starting and pty >= UNLIMITED):
        devpts_max = min(pty, PTY_MAX)
    return Plan(tuple(writes), limits_now, sysctls, devpts_max, shm_size)
