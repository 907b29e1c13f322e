"""Hook implementations of the notify plugin: a CT's ``statfs``/``fstatfs`` (on a btrfs
layout with a diskspace limit) and ``sysinfo`` (with a RAM limit) answered with the CT's own
figures by the installation's seccomp supervisor (docs/security.md, docs/disk.md), and the
``quotactl`` of a user-namespace CT's root with the second-level quota made for it.

The host's side (:mod:`vzcore_notify.supervisor`): ``vz_pre_start`` chooses the calls,
starts the supervisor if needed and registers the CT; ``vz_post_stop`` drops it.  Inside
(:mod:`vzcore_notify.handover`, a child module): ``vz_setup_child`` (the builder) makes the
CT's hand-over socket, ``vz_finalize_child`` (init) and ``vz_enter`` (each ``vzctl exec``)
install the filter and hand its listener over.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Parameter
    from vzcore.runtime import Run

CHILD_MODULES = ("vzcore.linux.caps", "vzcore.linux.seccomp", "vzcore.linux.seccomp_notify",
                 "vzcore.linux.notify_answers", "vzcore.linux.notifyd", "vzcore_notify.handover")
MODES = ("default", "off")
KEY = "SYSCALL_INTERCEPT"


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="intercept",
                      summary="statfs and sysinfo answered with the CT's own disk and memory "
                              "by a host seccomp supervisor",
                      child_modules=CHILD_MODULES, record="vzcore_notify.record:NotifyRecord")


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore.values import Choice

    yield Parameter(name="syscall-intercept", key=KEY, type=Choice(MODES),
                    help="default: answer statfs on a btrfs CT's root with its diskspace "
                         "limit and use, sysinfo (busybox free) with its RAM and swap "
                         "limits, and the CT root's quotactl (--quotaugidlimit in a user "
                         "namespace), through a host supervisor (seccomp user notification); "
                         "off: the kernel's own answers (applies at the next start)")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """A saved value that names no mode is refused (guessing would drop or add the
    interception against the admin's intent)."""
    value = changes[KEY].new if KEY in changes else ct.get(KEY)
    if value and value not in MODES:
        from vzcore.errors import InvalidValue

        raise InvalidValue(f"CT {ct.ctid}: {KEY}={value!r} is neither 'default' nor 'off'; "
                           f"fix it with 'vzctl set {ct.ctid} --syscall-intercept default --save'")


def _figures(ct: Container, run: Run) -> dict[str, Any] | None:
    """What the supervisor answers with, or ``None`` when nothing is to be intercepted."""
    from vzcore.linux.notify_answers import DISK_FIGURES_OPTION, QUOTACTL_OPTION, CtFigures, memory_of

    disk = run.options.get(DISK_FIGURES_OPTION) or {}
    figures = CtFigures(ct.ctid, disk.get("used_file"), disk.get("limit_file"),
                        quota=bool(run.options.get(QUOTACTL_OPTION)))
    if run.cgroups is not None and run.cgroups.has("memory") and memory_of(run.cgroups)[0] is not None:
        figures.cgroups = run.cgroups
    return figures.to_json() if figures.calls() else None


@hookimpl(trylast=True)
def vz_pre_start(ct: Container, run: Run) -> None:
    """After the other plugins' (the disk plugin names its figures, the beancounters plugin
    sets the memory limits): choose the calls, register the CT with the supervisor."""
    from vzcore.lifecycle.spawn import LOCAL_HOLDER_OPTION

    # An OCI runtime's start (vzcore-oci): its containers get the kernel's answers, as
    # under runc and crun (the hand-over through /dev was not tried in OCI bundles).
    if (ct.get(KEY) or "default") == "off" or run.options.get(LOCAL_HOLDER_OPTION):
        return
    figures = _figures(ct, run)
    if figures is None:
        return
    from vzcore.linux.notify_answers import CtFigures
    from vzcore_notify import supervisor
    from vzcore_notify.record import NotifyRecord

    daemon = supervisor.daemon_of(ct)
    # On record first: the stop drops the CT (and stops the supervisor with the last one).
    run.record = NotifyRecord(directory=str(daemon.directory),
                              calls=CtFigures.from_json(figures).calls())
    supervisor.register(ct, daemon, figures)


@hookimpl(trylast=True)
def vz_setup_child(ct: Container, run: Run) -> None:
    """In the builder, after the CT's /dev is mounted: the CT's hand-over socket."""
    if run.record is None:
        return
    from vzcore.errors import VzError
    from vzcore_notify import handover

    if run.state.init is None:
        raise VzError(f"CT {ct.ctid}: no init on record for the seccomp supervisor")
    handover.make_socket(ct, run.root, run.record.directory, run.state.init)


@hookimpl
def vz_finalize_child(ct: Container, run: Run) -> None:
    """In init, before it execs: the filter, its listener handed over (or the start fails)."""
    if run.record is not None:
        from vzcore_notify import handover

        handover.intercept(ct, run.record.calls, required=True)


@hookimpl
def vz_enter(ct: Container, run: Run) -> None:
    """In a joining process: the filter and its hand-over, or nothing when the CT's
    supervisor is gone (the process then sees the kernel's answers)."""
    if run.record is not None:
        from vzcore_notify import handover

        handover.intercept(ct, run.record.calls, required=False)


@hookimpl
def vz_post_stop(ct: Container, run: Run) -> None:
    """Drop the CT from the supervisor; the last CT's stop ends it."""
    if run.record is None:
        return
    from pathlib import Path

    from vzcore_notify import supervisor

    supervisor.drop(ct, supervisor.daemon_of(ct, Path(run.record.directory)))

