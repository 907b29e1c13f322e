"""``vzctl start``: lock, prepare the host, create init in its namespaces, record state.

:func:`_start_locked` is the whole sequence, every hook in the order it runs;
:mod:`vzcore.lifecycle.spawn` only forks and synchronises the processes.  In short:
mount if needed → the CT's cgroups → ``vz_namespaces`` → fork the processes that make
the CT's namespaces (they wait; the one init is forked from joins the cgroups meanwhile)
→ ``vz_pre_start`` → ``vz_setup_host(pid)`` → fork init, record it → init runs
:func:`_in_ct`: ``vz_setup_child``, ``vz_switch_root``, its own namespaces,
``vz_finalize_child``, exec ``/sbin/init`` → ``vz_post_start`` → state ``running``.

Which record each process sees: the host hooks share vzctl's ``run``, so each sees what
every earlier hook recorded.  The processes forked before ``vz_pre_start`` never read
their copy of the state; init reads the state file again once released, as saved when
its identity was recorded: everything ``vz_pre_start`` and ``vz_setup_host`` recorded,
read-only.
Every step that makes something is recorded in the state file first; on any failure the
teardown of :mod:`vzcore.lifecycle.teardown` undoes what was recorded, in reverse.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from vzcore.changes import ChangeSet
from vzcore.container import Container
from vzcore.ctgroups import check_leftover, plan
from vzcore.engine import Engine
from vzcore.errors import AlreadyRunning, InvalidValue, StartDisabled, VzError
from vzcore.faults import checkpoint
from vzcore.lifecycle import console, privileged
from vzcore.lifecycle.areas import check_areas
from vzcore.lifecycle.mount import check_layout, is_mounted, mount_ct
from vzcore.lifecycle.spawn import (
    CHROOT_OPTION,
    INIT_ENV_OPTION,
    JOIN_OPTION,
    LOCAL_HOLDER_OPTION,
    ROOT_OPTION,
    SHARE_OPTION,
    BuildSteps,
    FinishSteps,
    InitSpawner,
    OwnNamespaces,
)
from vzcore.lifecycle.teardown import teardown
from vzcore.linux.procfs import namespace
from vzcore.runtime import RUNNING, Run, State

WAIT_OPTION = "wait"
"""``run.options`` key: ``True`` when the start will wait for the CT's init (``--wait``),
so that the isolation plugin makes the notify socket only then."""
DEFAULT_WAIT_TIMEOUT = 300
"""Seconds ``vzctl start --wait`` waits for the CT's init by default (``WAIT_TIMEOUT``)."""


def wait_timeout(ct: Container, given: float | None) -> float:
    """``--wait-timeout``, else the config's ``WAIT_TIMEOUT``, else the default."""
    if given is not None:
        if given <= 0:
            raise InvalidValue(f"CT {ct.ctid}: --wait-timeout {given:g}: give a number of "
                               "seconds above 0")
        return given
    text = ct.get("WAIT_TIMEOUT") or ""
    try:
        seconds = float(text) if text else DEFAULT_WAIT_TIMEOUT
    except ValueError:
        raise InvalidValue(f"CT {ct.ctid}: WAIT_TIMEOUT={text!r} is not a number of seconds; "
                           "fix it in the CT's config or vz.conf") from None
    return seconds if seconds > 0 else DEFAULT_WAIT_TIMEOUT


def start(engine: Engine, ct: Container, *, force: bool = False, wait: bool = False,
          timeout: float | None = None, locked: bool = False, **options: Any) -> None:
    """Start ``ct``; raises :class:`AlreadyRunning` (32) if it runs.  With ``wait``, return
    only once its init says it is up (:class:`WaitFailed`, 133, after ``timeout``).
    ``locked``: the caller holds the CT's lock (a reboot inside, :mod:`.event`)."""
    ct.require_exists()
    seconds = wait_timeout(ct, timeout) if wait else 0.0
    plugins = engine.plugins
    isolation = plugins.require("isolation", "start")
    check_layout(engine, ct)
    check_areas(engine, ct)
    if (ct.get("DISABLED") or "").lower() == "yes" and not force:
        raise StartDisabled(f"CT {ct.ctid} is disabled (DISABLED=yes); start it with --force or "
                            f"enable it with 'vzctl set {ct.ctid} --disabled no --save'")
    engine.registry.check_minimums(ct)  # a saved value that would leave init unable to run
    plugins.run_each("vz_validate", ct=ct, changes=ChangeSet(), verb="start")
    privileged.check(engine, ct, "start", privileged=ct.idmap is None)
    plugins.import_child_modules()
    with contextlib.nullcontext() if locked else engine.lock(ct, "start"):
        state = engine.state(ct)
        if state is not None:
            if state.is_running:
                raise AlreadyRunning(f"CT {ct.ctid} is already running")
            engine.say(f"Cleaning up what the last run of CT {ct.ctid} left")
            teardown(engine, ct, state, umount=state.mounted_by_start, what="cleanup of the last run")
        engine.say(f"Starting CT {ct.ctid} ...")
        run = _start_locked(engine, ct, {**options, WAIT_OPTION: wait})
    engine.say(f"CT {ct.ctid} started")
    if wait:
        engine.say(f"Waiting for CT {ct.ctid} to boot ...")
        # The isolation provider booted init, so it is the one that can tell (by name,
        # not by hook order: another plugin answering first would not know this init).
        answers = plugins.call_each("vz_wait_ready", ct=ct, run=run, timeout=seconds,
                                    only=lambda name: name == isolation)
        if any(result for _name, result in answers):
            engine.say(f"CT {ct.ctid} is up")




def _start_locked(engine: Engine, ct: Container, options: dict[str, Any]) -> Run:
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
    pty: console.ConsolePty | None = None
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
        pty = console.open_pty(ct)  # before the fork: the CT's /dev/console (isolation)
        run.options[console.CONSOLE_OPTION] = pty.path
        run.options[console.CONSOLE_FD_OPTION] = pty.slave
        spawner = InitSpawner(ct, names, state.cgroups, _build(ct, run), finish_steps(ct, run),
                              _holder_forker(engine, ct, names, run.options),
                              join=run.options.get(JOIN_OPTION),
                              share=run.options.get(SHARE_OPTION) or ())
        spawner.fork()  # early: moving it into the cgroups overlaps vz_pre_start
        checkpoint("start:forked")
        plugins.run_each("vz_pre_start", ct=ct, run=run)
        checkpoint("start:pre-start-done")
        holder = spawner.namespaces_ready()
        checkpoint("start:attached")
        plugins.run_each("vz_setup_host", ct=ct, run=run, pid=holder)
        checkpoint("start:host-setup-done")
        state.init = spawner.fork_init()
        state.pidns = namespace(state.init.pid, "pid")  # what proves a process is the CT's
        state.save()  # init runs only once it is on record; this is the file it reads
        checkpoint("start:init-recorded")
        try:  # before init runs: a vzctl killed later must not take the console's master
            console.hand_over(ct, pty, state.init)
        except VzError as exc:  # the CT runs; only 'vzctl console' will say it has none
            engine.warn(f"warning: {exc}")
        checkpoint("start:console-handed-over")
        spawner.release()  # the builder runs _build, init finish_steps, then /sbin/init
        checkpoint("start:released")
        spawner.wait_exec()
        checkpoint("start:init-running")
        plugins.run_each("vz_post_start", ct=ct, run=run)
        checkpoint("start:post-start-done")
        state.phase = RUNNING
        state.save()
        return run
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
        if pty is not None:
            pty.close()


def _build(ct: Container, run: Run) -> BuildSteps:
    """What the builder runs: the host's root in the CT's new mount and PID namespaces
    (not its user namespace) builds the CT's file system view and switches init's root;
    it returns ``run.options`` as the hooks left them, for :func:`finish_steps`."""
    plugins = run.plugins

    def build() -> dict[str, Any]:
        # This process was forked before vz_pre_start: its copy of the state is older
        # than the file, which vzctl saved when it recorded init, just before the release.
        state = State.load(run.state.path, ct.ctid)
        if state is None:
            raise VzError(f"CT {ct.ctid}: the state file {run.state.path} vanished during the start")
        state.writable = False
        # in a joined mount namespace, the root as that namespace shows it
        child = attrs.evolve(run, state=state, root=run.options.get(ROOT_OPTION) or str(ct.root))
        plugins.run_each("vz_setup_child", ct=ct, run=child)
        if not plugins.first_result("vz_switch_root", ct=ct, run=child):
            raise VzError(f"CT {ct.ctid}: no plugin switched the root (vz_switch_root); "
                          "is the isolation plugin active?")
        return {"state": state.to_json(), "options": child.options}

    return build


def _holder_forker(engine: Engine, ct: Container, names: set[str],
                   options: Mapping[str, Any]) -> Callable[[dict[str, int]], int | None] | None:
    """Have the console daemon fork the holder, so that it is the parent of the CT's init
    and sees a reboot inside (:mod:`vzcore.lifecycle.event`); ``None`` (fork it here)
    when the daemon cannot, or at once when the start's caller must pass its descriptors
    on to init (:data:`~vzcore.lifecycle.spawn.LOCAL_HOLDER_OPTION`)."""
    if options.get(LOCAL_HOLDER_OPTION):
        return None

    def fork_holder(ends: dict[str, int]) -> int | None:
        try:
            return console.spawn_holder(ct, names, ends)
        except VzError as exc:
            engine.warn(f"warning: {exc}; a reboot inside CT {ct.ctid} will leave it stopped")
            return None

    return fork_holder


def finish_steps(ct: Container, run: Run) -> FinishSteps:
    """What init runs once released, in its new root: its own mount namespace (locking the
    mounts) and cgroup namespace, then ``vz_finalize_child``; it returns the variables the
    hooks put in ``run.options[INIT_ENV_OPTION]`` for init's environment."""
    plugins = run.plugins

    def finish(own: OwnNamespaces, built: Mapping[str, Any]) -> dict[str, str]:
        chroot = built["options"].get(CHROOT_OPTION)
        if chroot:  # the builder's root switch was a chroot, which moved only itself
            os.chroot(chroot)
            os.chdir("/")
        own.enter()
        # The state as the builder read it, before the root switch hid the file.
        state = State.from_json(run.state.path, ct.ctid, dict(built["state"]))
        state.writable = False
        child = attrs.evolve(run, state=state, root="/", options=dict(built["options"]))
        plugins.run_each("vz_finalize_child", ct=ct, run=child)
        return dict(child.options.get(INIT_ENV_OPTION) or {})

    return finish
