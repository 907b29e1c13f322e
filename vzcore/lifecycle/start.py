"""``vzctl start``: lock, prepare the host, create init in its namespaces, record state.

Order: mount if needed → the CT's cgroups → fork the setup process, which unshares the
namespaces of ``vz_namespaces`` and waits (it is moved into the cgroups meanwhile) →
``vz_pre_start`` → ``vz_setup_host(pid)`` → init is forked: ``vz_setup_child``,
``vz_switch_root``, ``vz_finalize_child``, exec ``/sbin/init`` → ``vz_post_start`` →
state ``running``.
Every step that makes something is recorded in the state file first; on any failure the
teardown of :mod:`vzcore.lifecycle.teardown` undoes what was recorded, in reverse.
"""

from __future__ import annotations

from typing import Any

from vzcore.changes import ChangeSet
from vzcore.container import Container
from vzcore.ctgroups import check_leftover, plan
from vzcore.engine import Engine
from vzcore.errors import AlreadyRunning, StartDisabled, VzError
from vzcore.faults import checkpoint
from vzcore.lifecycle import privileged
from vzcore.lifecycle.areas import check_areas
from vzcore.lifecycle.mount import check_layout, is_mounted, mount_ct
from vzcore.lifecycle.spawn import InitSpawner
from vzcore.lifecycle.teardown import teardown
from vzcore.linux.procfs import ProcessId, namespace
from vzcore.runtime import RUNNING, Run


def start(engine: Engine, ct: Container, *, force: bool = False, **options: Any) -> None:
    """Start ``ct``; raises :class:`AlreadyRunning` (32) if it runs."""
    ct.require_exists()
    plugins = engine.plugins
    plugins.require("isolation", "start")
    check_layout(engine, ct)
    check_areas(engine, ct)
    if (ct.get("DISABLED") or "").lower() == "yes" and not force:
        raise StartDisabled(f"CT {ct.ctid} is disabled (DISABLED=yes); start it with --force or "
                            f"enable it with 'vzctl set {ct.ctid} --disabled no --save'")
    engine.registry.check_minimums(ct)  # a saved value that would leave init unable to run
    plugins.run_each("vz_validate", ct=ct, changes=ChangeSet(), verb="start")
    privileged.check(engine, ct, "start", privileged=ct.idmap is None)
    plugins.import_child_modules()
    with engine.lock(ct, "start"):
        state = engine.state(ct)
        if state is not None:
            if state.is_running:
                raise AlreadyRunning(f"CT {ct.ctid} is already running")
            engine.say(f"Cleaning up what the last run of CT {ct.ctid} left")
            teardown(engine, ct, state, umount=state.mounted_by_start, what="cleanup of the last run")
        engine.say(f"Starting CT {ct.ctid} ...")
        _start_locked(engine, ct, options)
    engine.say(f"CT {ct.ctid} started")


def _start_locked(engine: Engine, ct: Container, options: dict[str, Any]) -> None:
    plugins = engine.plugins
    state = engine.new_state(ct)
    state.variants["VE_LAYOUT"] = ct.layout
    state.mounted_by_start = not is_mounted(ct)
    state.cgroups = plan(ct)
    check_leftover(ct, state.cgroups)  # a group on no record: never reused if busy or frozen
    state.save()  # everything teardown may have to undo is on record before it exists
    checkpoint("start:state-saved")
    run = Run(ct, state, plugins, options=options)
    spawner: InitSpawner | None = None
    try:
        if state.mounted_by_start:
            mount_ct(engine, ct)  # before the fork: the child copies the host's mounts
            checkpoint("start:mounted")
        state.cgroups.create()
        if ct.idmap is not None:
            state.cgroups.delegate(*ct.idmap.root)
        checkpoint("start:cgroups-created")
        names: set[str] = set()
        for _plugin, result in plugins.call_each("vz_namespaces", ct=ct):
            names.update(result or ())
        spawner = InitSpawner(ct, run, names, attach=state.cgroups.attach)
        spawner.fork()
        checkpoint("start:forked")
        plugins.run_each("vz_pre_start", ct=ct, run=run)
        checkpoint("start:pre-start-done")

        def record_init(init: ProcessId) -> None:
            state.init = init
            state.pidns = namespace(init.pid, "pid")  # what proves a process is the CT's
            state.save()
            checkpoint("start:init-recorded")

        spawner.finish(record_init)
        checkpoint("start:init-running")
        plugins.run_each("vz_post_start", ct=ct, run=run)
        checkpoint("start:post-start-done")
        state.phase = RUNNING
        state.save()
    except BaseException:
        if spawner is not None:
            spawner.abort()
        try:
            teardown(engine, ct, state, umount=state.mounted_by_start, what="rollback of the start")
        except VzError as undo:
            engine.warn(f"warning: {undo}")
        raise
    finally:
        if spawner is not None:
            spawner.close()
