"""Hook implementations of the cpu plugin (subsystem ``cpu``).

Parameters: ``--cpuunits`` (CPUUNITS; for CT 0, the host: VE0CPUUNITS), ``--cpulimit``
(CPULIMIT), ``--cpus`` (CPUS), ``--cpumask`` (CPUMASK), all live on a running CT.
vzlist fields: ``cpuunits``, ``cpulimit``, ``cpus``, ``cpumask``, ``cpu_usage``,
``laverage``.  The translation is in :mod:`vzcore_cpu.mapping`; docs/cpu.md explains it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.linux.cgroups import CgroupSet
    from vzcore.params import Field, Parameter
    from vzcore.runtime import Run
    from vzcore_cpu.mapping import CpuSettings
    from vzcore_cpu.record import CpuRecord

OPTIONS = {"CPUUNITS": "cpuunits", "CPULIMIT": "cpulimit", "CPUS": "cpus", "CPUMASK": "cpumask"}


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="cpu",
                      summary="fair CPU shares, hard limits, CPU count and affinity (cpu, cpuset cgroups)",
                      child_modules=("vzcore_cpu.view",), record="vzcore_cpu.record:CpuRecord")


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore.values import Integer
    from vzcore_cpu.grammar import MAX_CPUS, CpuLimit, CpuMask
    from vzcore_cpu.mapping import MAX_UNITS, MIN_UNITS

    yield Parameter(name="cpuunits", key="CPUUNITS", type=Integer(MIN_UNITS, MAX_UNITS), live=True,
                    host_key="VE0CPUUNITS", minimum=str(MIN_UNITS),
                    help="relative CPU weight against other CTs and the host (default 1000)")
    # 1 % of one CPU (the kernel's smallest quota, 1 ms a period) still runs init and a
    # joined command, slowly; 0 is no limit.
    yield Parameter(name="cpulimit", key="CPULIMIT", type=CpuLimit(), live=True, minimum="0",
                    help="hard CPU limit: N percent of one CPU (200 = two CPUs), or N% of the "
                         "whole host; 0 = none")
    yield Parameter(name="cpus", key="CPUS", type=Integer(0, MAX_CPUS), live=True, minimum="0",
                    help="number of CPUs the CT may use and sees (0 = all)")
    yield Parameter(name="cpumask", key="CPUMASK", type=CpuMask(), live=True,
                    help="CPUs the CT may run on: a list such as 0-1,3 (at least one CPU of the "
                         "host), or all")


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field

    yield Field(name="cpuunits", header="CPUUNI", width=7, kind="number",
                help="cpuunits, the CT's relative CPU weight")
    yield Field(name="cpulimit", header="CPULIM", width=6, kind="number",
                help="hard CPU limit in percent of one CPU (0: none)")
    yield Field(name="cpus", header="CPUS", width=4, kind="number",
                help="number of CPUs the CT may use (-: all)")
    yield Field(name="cpumask", header="CPUMASK", width=-10, help="CPUs the CT may run on")
    yield Field(name="cpu_usage", header="CPU_USAGE", width=10, stopped=False, kind="number",
                help="CPU time used by the CT since its start, in seconds")
    yield Field(name="laverage", header="LAVERAGE", width=20, stopped=False, kind="laverage",
                help="CPU pressure: % of time a CT task waited for a CPU, over 10 s/60 s/300 s")


def _getter(ct: Container, changes: ChangeSet | None = None,
            applied: CpuRecord | None = None) -> Callable[[str], str | None]:
    """Config text of a CPU key: the verb's change, else what runs now, else the config."""
    from vzcore_cpu.grammar import texts_of

    live = texts_of(applied.settings()) if applied else {}

    def get(key: str) -> str | None:
        if changes is not None and key in changes:
            return changes[key].new
        if key in live:
            return live[key]
        return ct.get(key)

    return get


def _settings(ct: Container, get: Callable[[str], str | None]) -> CpuSettings:
    from vzcore.errors import InvalidValue
    from vzcore_cpu.grammar import SettingError, settings_of

    try:
        return settings_of(get)
    except SettingError as exc:
        raise InvalidValue(f"CT {ct.ctid}: {exc}; fix it with "
                           f"'vzctl set {ct.ctid} --{OPTIONS[exc.key]} ... --save'") from None


def _host_units(ct: Container) -> int:
    from vzcore.errors import InvalidValue
    from vzcore_cpu import host

    try:
        return host.units(ct.paths, ct.global_config)
    except ValueError as exc:
        raise InvalidValue(f"the host's cpuunits ({host.KEY}) are malformed: {exc}; fix them "
                           "with 'vzctl set 0 --cpuunits N --save'") from None


def _rebalance(ct: Container, cgroups: CgroupSet, *, leaving: bool = False) -> None:
    from vzcore_cpu import apply

    group = cgroups.dir_for("cpu")
    if group is not None:
        apply.rebalance(cgroups.parent(), _host_units(ct),
                        leaving=group.directory.name if leaving else None)


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """Refuse malformed CPU keys and CPUs the host does not have, before anything changes."""
    from vzcore.errors import InvalidValue
    from vzcore_cpu.grammar import online_cpus
    from vzcore_cpu.mapping import format_cpulist

    if ct.is_host:
        return  # VE0CPUUNITS was parsed by its grammar; there is nothing else to check
    if verb != "start" and not any(key in changes for key in OPTIONS):
        return
    settings = _settings(ct, _getter(ct, changes))
    if settings.mask is not None:
        online = online_cpus()
        if not settings.mask <= online:
            raise InvalidValue(
                f"CT {ct.ctid}: --cpumask {format_cpulist(settings.mask)}: CPUs "
                f"{format_cpulist(settings.mask - online)} do not exist on this host (its CPUs "
                f"are {format_cpulist(online)}); fix it with 'vzctl set {ct.ctid} --cpumask "
                "LIST|all --save'")
    if verb == "start":
        _host_units(ct)


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    """Write the CT's weight, quota and cpuset, its CPU view files, and rebalance the host."""
    import sys

    from vzcore_cpu import apply, view
    from vzcore_cpu.record import CpuRecord

    settings = _settings(ct, _getter(ct))
    where = view.directory(ct.paths, ct.ctid)
    # One write of the state file, before the view directory exists (stop removes it).
    run.record = CpuRecord.of(str(where), settings)
    cpus = apply.apply_settings(ct.ctid, run.cgroups, settings)
    view.write(where, cpus)
    # boot-all rebalances once, at its end (vz_batch_done).  Only boot-all sets its batch
    # option, so a start it did not make needs no import of it (and of dataclasses): 2-3 ms.
    bootall = sys.modules.get("vzcore.lifecycle.bootall")
    if bootall is None or not run.options.get(bootall.BATCH_OPTION):
        _rebalance(ct, run.cgroups)


@hookimpl
def vz_batch_done(cts: list[Container], verb: str) -> None:
    """After a boot-all or a stop-all, whose starts and stops left it out: the CTs' parent
    groups' weight, once per parent (reading every running CT's weight once, not once per
    start or stop)."""
    from vzcore.ctgroups import plan

    done: set[str] = set()
    for ct in cts:
        groups = plan(ct)
        group = groups.dir_for("cpu")
        if group is None or str(group.directory.parent) in done:
            continue
        done.add(str(group.directory.parent))
        _rebalance(ct, groups)


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    """Show the CT only its own CPUs in /proc/cpuinfo and /sys/devices/system/cpu/online."""
    from vzcore_cpu import view

    view.mount(run.root, view.directory(ct.paths, ct.ctid))


@hookimpl
def vz_post_stop(ct: Container, run: Run) -> None:
    """Remove the view files and give the stopped CT's weight back to the host (after a
    stop-all's last stop: ``vz_batch_done``)."""
    from vzcore.lifecycle.bootall import BATCH_OPTION
    from vzcore_cpu import view

    record: CpuRecord | None = run.record
    if record is not None:
        view.remove(Path(record.view))
    if run.options.get(BATCH_OPTION):
        return
    if run.state.cgroups is not None and run.state.cgroups.exists():
        _rebalance(ct, run.state.cgroups, leaving=True)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    """Change a running CT's CPU settings at once; for CT 0, the host's cpuunits."""
    from vzcore_cpu import apply, host, view
    from vzcore_cpu.grammar import host_units
    from vzcore_cpu.record import CpuRecord

    if ct.is_host:
        if host.KEY in changes:
            units = host_units(changes[host.KEY].new)
            host.remember(ct.paths, units)
            for parent in host.running_parents(ct.paths):
                apply.rebalance(parent, units)
        return
    if run is None or not any(key in changes for key in OPTIONS):
        return
    record: CpuRecord | None = run.record
    settings = _settings(ct, _getter(ct, changes, record))
    cpus = apply.apply_settings(ct.ctid, run.cgroups, settings)
    if record is not None:
        view.write(Path(record.view), cpus)
        run.record = CpuRecord.of(record.view, settings)
    if "CPUUNITS" in changes:
        _rebalance(ct, run.cgroups)


@hookimpl
def vz_collect(ct: Container, run: Run | None) -> Mapping[str, Any]:
    """The CT's CPU settings (what runs now, else its config), CPU time and CPU pressure."""
    from vzcore.errors import VzError
    from vzcore_cpu import apply
    from vzcore_cpu.mapping import format_cpulist

    values: dict[str, Any] = {}
    applied: CpuRecord | None = run.record if run is not None else None
    try:
        settings = _settings(ct, _getter(ct, None, applied))
    except VzError:
        settings = None  # a malformed config shows as '-'; start and set say what is wrong
    if settings is not None:
        values.update(cpuunits=settings.units, cpulimit=settings.limit, cpus=settings.cpus or None,
                      cpumask="all" if settings.mask is None else format_cpulist(settings.mask))
    if run is not None:
        try:
            usage = apply.usage_seconds(run.cgroups)
            pressure = apply.pressure(run.cgroups)
        except VzError:
            return values  # the CT stopped meanwhile
        values["cpu_usage"] = None if usage is None else round(usage, 3)
        values["laverage"] = None if pressure is None else list(pressure)
    return values
