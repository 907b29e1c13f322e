"""Applying CPU settings to a CT's cgroups, balancing the CTs against the host, and
reading back what the kernel counts (CPU time, CPU pressure)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vzcore.errors import KernelError, VzError
from vzcore.linux.cgroups import CgroupDir, CgroupSet, read_file
from vzcore_cpu import mapping
from vzcore_cpu.mapping import CpuSettings


def _effective_file(version: int) -> str:
    return "cpuset.effective_cpus" if version == 1 else "cpuset.cpus.effective"


def apply_settings(ctid: int, cgroups: CgroupSet, settings: CpuSettings) -> frozenset[int]:
    """Write ``settings`` to the CT's groups; return the CPUs the CT may now run on."""
    if cgroups.has("cpu"):
        for name, value in mapping.cpu_files(settings, cgroups.version):
            cgroups.write("cpu", name, value)
    elif settings.units != mapping.DEFAULT_UNITS or mapping.effective_limit(settings):
        raise VzError(f"CT {ctid}: the cpu cgroup controller is not available on this host, so "
                      "cpuunits, cpulimit and cpus cannot be applied; remove them from the CT's "
                      "config or enable the controller")
    return _apply_cpuset(ctid, cgroups, settings)


def _apply_cpuset(ctid: int, cgroups: CgroupSet, settings: CpuSettings) -> frozenset[int]:
    from vzcore_cpu.grammar import online_cpus

    group = cgroups.dir_for("cpuset")
    if group is None:
        if settings.mask is not None:
            raise VzError(f"CT {ctid}: --cpumask needs the cpuset cgroup controller, which this "
                          "host does not offer; remove CPUMASK from the CT's config")
        # Without cpuset the CPU count still holds through the quota; the CT sees all CPUs.
        return online_cpus()
    version = cgroups.version
    parent = group.directory.parent
    available = mapping.parse_cpulist(read_file(parent / _effective_file(version)))
    chosen = mapping.chosen_cpus(settings, sorted(available), ctid)
    if chosen is not None and not chosen <= available:
        missing = mapping.format_cpulist(chosen - available)
        raise VzError(f"CT {ctid}: --cpumask {mapping.format_cpulist(chosen)}: CPUs {missing} are "
                      f"not available to the CTs (their parent group has "
                      f"{mapping.format_cpulist(available)})")
    if chosen is not None:
        value: str | None = mapping.format_cpulist(chosen)
    elif version == 1:
        value = read_file(parent / "cpuset.cpus").strip()  # v1 has no "inherit": copy the parent's
    elif not cgroups.read("cpuset", "cpuset.cpus"):
        value = None  # v2, never restricted: empty means "the parent's CPUs", as wanted
    else:
        # A populated v2 cpuset cannot go back to empty (ENOSPC): copy the parent's CPUs.
        value = mapping.format_cpulist(available)
    if value is not None:
        cgroups.write("cpuset", "cpuset.cpus", value)
    effective = mapping.parse_cpulist(cgroups.read("cpuset", _effective_file(version)))
    return effective or available


# -- the CTs against the host (VE0CPUUNITS) ------------------------------------------------


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise weight updates of one parent group between concurrent vzctl runs."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def rebalance(parent: CgroupSet, host_units: int, *, leaving: str | None = None) -> int | None:
    """Set the weight of the CTs' parent group from its children (the running CTs) and
    the host's cpuunits; ``leaving`` names a child group about to be removed.

    Returns the weight written, or ``None`` when there was nothing to do (no CT runs, or
    the parent is the hierarchy's root, which has no weight).
    """
    from vzcore.ctgroups import DAEMON_GROUP_PREFIX

    group = parent.dir_for("cpu")
    if group is None or not group.directory.is_dir():
        return None
    version = parent.version
    name = mapping.weight_file(version)
    if not group.file(name).exists():
        return None
    with _locked(group.directory):
        weights = []
        for child in os.scandir(group.directory):
            if child.is_dir(follow_symlinks=False) and child.name != leaving \
                    and not child.name.startswith(DAEMON_GROUP_PREFIX):  # vzctl's daemons
                try:
                    weights.append(int(read_file(Path(child.path, name))))
                except (KernelError, ValueError):
                    continue  # removed meanwhile
        value = mapping.parent_weight(weights, host_units, version)
        if value is not None:
            parent.write("cpu", name, str(value))
    return value


# -- counters -----------------------------------------------------------------------------


def _unified(cgroups: CgroupSet) -> CgroupDir | None:
    return next((d for d in cgroups.dirs if d.version == 2), None)


def usage_seconds(cgroups: CgroupSet) -> float | None:
    """CPU time the CT's processes used, dead ones included (``None``: not accounted)."""
    if cgroups.version == 1:
        if not cgroups.has("cpuacct"):
            return None
        return mapping.usage_seconds(cgroups.read("cpuacct", "cpuacct.usage"), 1)
    unified = _unified(cgroups)
    if unified is None:
        return None
    return mapping.usage_seconds(read_file(unified.file("cpu.stat")), 2)


def pressure(cgroups: CgroupSet) -> tuple[float, float, float] | None:
    """The CT's CPU pressure (PSI ``some`` over 10 s, 60 s, 300 s, in percent), from its
    cgroup v2 group; ``None`` without cgroup2 or PSI."""
    unified = _unified(cgroups)
    if unified is None:
        return None
    try:
        return mapping.parse_pressure(read_file(unified.file("cpu.pressure")))
    except KernelError:
        return None
