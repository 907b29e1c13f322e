"""Hook implementations of the beancounters plugin (subsystem ``beancounters``).

Start: cgroup limits in ``vz_pre_start``; the IPC sysctls in the CT's IPC namespace in
``vz_setup_host``; in ``vz_setup_child`` (the CT's init, before it runs anything) its
resource limits, which every CT process inherits, the devpts ``max=`` and the /dev/shm
size; the in-CT view in ``vz_post_start``.  ``vz_apply`` changes all of them on a
running CT.  The mapping itself is :mod:`vzcore_beancounters.plan`.
"""

from __future__ import annotations

import resource
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Command, Field, Parameter
    from vzcore.runtime import Run
    from vzcore_beancounters.record import BeancountersRecord


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="beancounters",
                      summary="User Beancounters on memory and pids cgroups, devpts, IPC "
                              "sysctls and rlimits; vzctl ubc",
                      child_modules=("vzcore_beancounters.child", "vzcore_beancounters.settings"),
                      record="vzcore_beancounters.record:BeancountersRecord")


def _whole_pages(values: Sequence[int]) -> str:
    from vzcore.values import LONG_MAX, PAGE_SIZE

    value = values[-1]
    return "0:unlimited" if value >= LONG_MAX else f"0:{value // PAGE_SIZE}"


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore.values import PairOf, Size
    from vzcore_beancounters.limits import pair_type
    from vzcore_beancounters.resources import BY_NAME, RESOURCES, UNIT_SIZE

    for r in RESOURCES:
        unit = {"bytes": "bytes (or K, M, G)", "pages": "pages (or K, M, G)", "items": "items"}[r.unit]
        yield Parameter(name=r.name, key=r.key, type=pair_type(r.name), live=True, short=r.short,
                        minimum=r.minimum, help=f"{r.help}; barrier[:limit] in {unit}")
    size = Size(UNIT_SIZE["bytes"], metavar="SIZE")
    ram_minimum = BY_NAME["physpages"].minimum.partition(":")[2]
    yield Parameter(name="ram", key="PHYSPAGES", type=size, live=True, minimum=ram_minimum,
                    merge=lambda _old, values: _whole_pages(values),
                    help="RAM of the CT (sets physpages to 0:SIZE)")
    yield Parameter(name="swap", key="SWAPPAGES", type=size, live=True, minimum="0",
                    merge=lambda _old, values: _whole_pages(values),
                    help="swap the CT may use besides its RAM (sets swappages to 0:SIZE)")
    yield Parameter(name="vm_overcommit", key="VM_OVERCOMMIT", type=_overcommit_type(), live=True,
                    help="with --ram: privvmpages = (RAM + swap) x N (0: unlimited)")
    yield Parameter(name="avnumproc", key="AVNUMPROC", type=PairOf(Size(0)), live=True, minimum="0",
                    help="expected average number of processes (kept for OpenVZ's tools)")


def _overcommit_type() -> Any:
    from vzcore_beancounters.values import Overcommit

    return Overcommit()


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field
    from vzcore_beancounters.resources import RESOURCES

    for r in RESOURCES:
        yield Field(name=r.name, header=r.header, width=10, stopped=False, kind="ubc",
                    help=r.help)
    yield Field(name="vswap", header="VSWAP", width=-5, kind="bool",
                help="physpages has a limit (VSwap-style memory settings)")


@hookimpl
def vz_commands() -> Iterable[Command]:
    from vzcore.params import Command

    yield Command(name="ubc", target="vzcore_beancounters.cli:ubc",
                  summary="Show CTs' beancounters as /proc/user_beancounters does")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    from vzcore_beancounters.settings import config_limits

    config_limits(ct, changes)  # raises InvalidValue naming the CT, the key and the fix


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    from vzcore_beancounters import apply, peaks, view
    from vzcore_beancounters.plan import plan
    from vzcore_beancounters.record import BeancountersRecord
    from vzcore_beancounters.settings import config_limits, config_text, host_swap, nr_open

    limits = config_limits(ct)
    settings = plan(limits, run.cgroups.version, nr_open=nr_open(), host_swap=host_swap())
    record = BeancountersRecord(limits=limits.to_json(), config=config_text(ct),
                                rlimits=dict(settings.rlimits), view=view.prepare())
    run.record = record
    peaks.remove(peaks.path_for(ct.paths.run_dir, ct.ctid))
    unenforced = apply.apply_cgroups(ct.ctid, run.cgroups, settings.cgroup)
    # undoes nothing: written with the start's next write, not one of its own
    run.amend(attrs.evolve(record, unenforced=unenforced))


@hookimpl
def vz_setup_host(ct: Container, run: Run, pid: int) -> None:
    """The IPC sysctls (shmpages) in the CT's IPC namespace, held by process ``pid``, and
    the resource limits on ``pid`` (the process init is forked from, which the console
    daemon may have forked: init and every process of the CT inherit them)."""
    from vzcore_beancounters import apply
    from vzcore_beancounters.plan import plan
    from vzcore_beancounters.settings import applied_limits, nr_open

    settings = plan(applied_limits(ct, run.record), run.cgroups.version, nr_open=nr_open())
    if settings.sysctls:
        apply.sysctls_in(pid, settings.sysctls, ct.root_owner)
    apply.apply_rlimits([pid], settings.rlimits)


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    """In the builder of the CT's file system view (the host's root): the devpts ``max=``,
    the /dev/shm size, the view's placeholder."""
    from vzcore_beancounters import child
    from vzcore_beancounters.settings import config_limits

    # The config is what vz_pre_start read and recorded (the CT's lock is held
    # throughout the start); the record is readable here too (vzcore.hookspecs).
    child.setup(run.root, config_limits(ct))


@hookimpl
def vz_post_start(ct: Container, run: Run) -> None:
    from vzcore_beancounters import view

    view.attach(ct, run)


@hookimpl
def vz_post_stop(ct: Container, run: Run) -> None:
    """Forget the CT's peaks; the last CT with a view lets the view daemon go.  Also
    without a record: a CT whose state file was lost (rebuilt from the kernel) may have
    had one."""
    from vzcore_beancounters import peaks, view

    peaks.remove(peaks.path_for(ct.paths.run_dir, ct.ctid))
    if run.record is None or run.record.view:
        view.release(ct, run.plugin)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    if run is None:
        return  # a stopped CT: the engine saves the config; nothing runs to change
    from vzcore_beancounters import live

    live.change(ct, changes, run)


@hookimpl
def vz_enter(ct: Container, run: Run) -> None:
    """Give the joining process the CT's resource limits, as recorded at start.

    This runs inside the CT, where this plugin's files cannot be imported any more: it
    uses nothing but the record and the ``resource`` module.
    """
    record: BeancountersRecord | None = run.record
    for name, (soft, hard) in (record.rlimits if record else {}).items():
        which = getattr(resource, name)
        try:
            resource.setrlimit(which, (soft, hard))
        except (PermissionError, ValueError):
            # Without CAP_SYS_RESOURCE a hard limit cannot rise: keep it, stay below it.
            _old_soft, old_hard = resource.getrlimit(which)
            if old_hard != resource.RLIM_INFINITY:
                hard = old_hard if hard == resource.RLIM_INFINITY else min(hard, old_hard)
                soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
            resource.setrlimit(which, (soft, hard))


@hookimpl
def vz_collect(ct: Container, run: Run | None, fields: Collection[str]) -> Mapping[str, Any]:
    """Read only the beancounters vzlist shows: the default columns need ``pids.current``
    alone, while sockets and open files cost a walk over the CT's processes."""
    from vzcore_beancounters.snapshot import collect

    return collect(ct, run, fields)
