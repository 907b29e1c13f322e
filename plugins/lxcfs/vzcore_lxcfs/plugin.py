"""Hook implementations of the lxcfs plugin (subsystem ``views``).

A CT sees its own memory, CPUs, uptime and load in ``free``, ``uptime``, ``top``,
``/proc/meminfo`` and friends: lxcfs's files are bound over the CT's in its init
(``vz_setup_child``).  One lxcfs per installation serves every CT (:mod:`.daemon`); vzctl
restarts it when it finds it dead and binds it anew into the running CTs
(:mod:`.recover`).  Parameter: ``--lxcfs yes|no`` (``LXCFS``, also in vz.conf); unset,
views are on where lxcfs is installed.  docs/views.md explains it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from vzcore import hookimpl
from vzcore.plugin import PluginInfo
from vzcore_lxcfs.record import LxcfsRecord

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Field, Parameter
    from vzcore.runtime import Run
    from vzcore_lxcfs.daemon import Place

KEY = "LXCFS"


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="views",
                      summary="the CT's own memory, CPUs, uptime and load in /proc (one shared "
                              "lxcfs, restarted and bound anew when it dies)",
                      child_modules=("vzcore_lxcfs.bind", "vzcore_lxcfs.daemon"),
                      record=LxcfsRecord)


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore.values import YesNo

    yield Parameter(name="lxcfs", key=KEY, type=YesNo(), live=False, on_create=True,
                    help="show the CT its own memory, CPUs, uptime and load in /proc through "
                         "lxcfs (default: yes where lxcfs is installed)")


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field

    yield Field(name="lxcfs", header="LXCFS", width=-5, stopped=False, kind="bool",
                help="the CT's /proc files come from lxcfs (its own memory, CPUs, uptime)")


def _wanted(ct: Container, changes: ChangeSet | None = None) -> bool | None:
    """``LXCFS``: True, False, or ``None`` (unset: use lxcfs where installed)."""
    from vzcore.values import YesNo

    text = changes[KEY].new if changes is not None and KEY in changes else ct.get(KEY)
    if text is None or not text.strip():
        return None
    try:
        return YesNo().parse(text)
    except ValueError:
        from vzcore.errors import InvalidValue

        raise InvalidValue(f"CT {ct.ctid}: LXCFS={text!r} is neither yes nor no; fix it with "
                           f"'vzctl set {ct.ctid} --lxcfs yes|no --save'") from None


def _missing(ct: Container) -> str | None:
    """Why this host cannot serve views (``None``: it can)."""
    import os

    from vzcore_lxcfs import daemon

    if daemon.binary(ct.global_config.get(daemon.BINARY_KEY)) is None:
        name = ct.global_config.get(daemon.BINARY_KEY) or "lxcfs"
        return f"lxcfs is not installed ({name} not found; install the Debian package lxcfs)"
    if not os.path.exists("/dev/fuse"):
        return "the host has no /dev/fuse (load the fuse module: modprobe fuse)"
    return None


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """Refuse ``--lxcfs yes`` (or ``LXCFS=yes`` at start) on a host without lxcfs."""
    from vzcore.errors import InvalidValue

    if ct.is_host or (verb != "start" and KEY not in changes):
        return
    if _wanted(ct, changes) is True:
        why = _missing(ct)
        if why is not None:
            raise InvalidValue(f"CT {ct.ctid}: --lxcfs yes: {why}; or turn the views off with "
                               f"'vzctl set {ct.ctid} --lxcfs no --save'")


def _views_on(ct: Container) -> bool:
    wanted = _wanted(ct)
    return wanted is True or (wanted is None and _missing(ct) is None)


@hookimpl
def vz_namespaces(ct: Container) -> Iterable[str]:
    """A time namespace of its own, so ``sysinfo(2)`` reports the CT's uptime too."""
    from vzcore_lxcfs import timens

    return ("time",) if _views_on(ct) and timens.available() else ()


@hookimpl
def vz_setup_host(ct: Container, run: Run, pid: int) -> None:
    """Start the CT's boot-time clock at zero (before its init exists)."""
    from vzcore_lxcfs import timens

    if run.record is not None and timens.available() and timens.unshared(pid):
        timens.start_clock_at_zero(pid)  # not unshared: views were off when chosen


def _place(ct: Container) -> Place:
    """The daemon's files and its cgroups for the installation of ``ct``."""
    from vzcore.ctgroups import daemon_groups
    from vzcore_lxcfs import daemon

    return daemon.place(ct.paths.run_dir, daemon_groups(ct, daemon.PLUGIN))


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    """Record the CT as a user of the shared lxcfs, then make sure it serves."""
    import sys

    import attrs

    from vzcore.errors import VzError
    from vzcore_lxcfs import daemon, recover

    where = _place(ct)
    if not _views_on(ct):
        # Any start repairs the daemon the running CTs use (a failure is theirs, not ours).
        if where.directory.exists():
            try:
                recover.check(where, ct.paths.run_dir,
                              daemon.binary(ct.global_config.get(daemon.BINARY_KEY)))
            except VzError as exc:
                print(f"warning: {exc}", file=sys.stderr)
        return
    program = daemon.binary(ct.global_config.get(daemon.BINARY_KEY))
    if program is None:  # removed since vz_validate looked
        raise VzError(f"CT {ct.ctid}: lxcfs is no longer installed; install the Debian "
                      f"package lxcfs or start the CT with 'vzctl set {ct.ctid} --lxcfs no --save'")
    # On record first: the daemon is stopped when no state file names it any more.
    run.record = LxcfsRecord(directory=str(where.directory), files=daemon.FILES)
    process = recover.ensure_for_start(where, ct.paths.run_dir, program)
    # For the CT's init, which binds from this daemon: written with the start's next save,
    # which comes before init is released.
    run.amend(attrs.evolve(run.record, daemon_pid=process.pid,
                           mntns=daemon.hold_namespace(process)))


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    """Bind the daemon's files over the CT's own /proc files (before the root switch)."""
    import os
    from pathlib import Path

    from vzcore.errors import VzError
    from vzcore_lxcfs import bind, daemon

    record: LxcfsRecord | None = run.record
    if record is None:
        return
    if not record.mntns:
        raise VzError(f"CT {ct.ctid}: the lxcfs daemon was not found at the start")
    ns_fd = daemon.open_namespace(record.daemon_pid, record.mntns)
    try:
        bind.bind_at_start(run.root, ns_fd, Path(record.mountpoint), record.files)
    finally:
        os.close(ns_fd)


@hookimpl
def vz_post_stop(ct: Container, run: Run) -> None:
    """Stop the shared lxcfs when this was the last CT using it (idempotent).  Also without
    a record: a CT whose state file was lost (and rebuilt from the kernel) used it too.
    In a stop-all, once after the last stop instead (:func:`vz_batch_done`): asking
    whether another CT uses it reads every CT's state file under the daemon's lock, which
    a thousand stops did one after the other."""
    from vzcore.lifecycle.bootall import BATCH_OPTION
    from vzcore_lxcfs import daemon

    if run.options.get(BATCH_OPTION):
        return
    where = _place(ct)
    if run.record is not None or where.directory.exists():
        daemon.stop_unless_used(where, ct.paths.run_dir, ct.ctid)


@hookimpl
def vz_batch_done(cts: list[Container], verb: str) -> None:
    """After a stop-all: stop the shared lxcfs if no CT uses it any more (each stop of the
    run left that to this call)."""
    from vzcore_lxcfs import daemon

    if verb != "stop" or not cts:
        return
    where = _place(cts[0])  # one daemon per installation
    if where.directory.exists():
        daemon.stop_unless_used(where, cts[0].paths.run_dir, leaving=0)  # CT 0: no CT


def _check(ct: Container, run: Run | None) -> None:
    from vzcore_lxcfs import daemon, recover

    if run is not None and run.record is not None:
        recover.check(_place(ct), ct.paths.run_dir,
                      daemon.binary(ct.global_config.get(daemon.BINARY_KEY)))


@hookimpl
def vz_check(ct: Container, run: Run) -> None:
    """A dead lxcfs is started again and bound anew into every running CT."""
    _check(ct, run)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    """``--lxcfs`` takes effect at the next start; a dead daemon is repaired meanwhile."""
    _check(ct, run)


@hookimpl
def vz_collect(ct: Container, run: Run | None) -> Mapping[str, Any]:
    """Whether the running CT's /proc files come from lxcfs."""
    if run is None:
        return {}
    return {"lxcfs": run.record is not None}
