"""Cleaning up a CT's runtime from its state file: after stop, a failed start, or a crash.

The same steps serve all three cases, so a rollback and a recovery after ``kill -9`` are
the same code: kill the CT's processes left in its cgroups (thawed first if frozen;
a process that is not the CT's is left alone and named), let every plugin undo what it
recorded (``vz_post_stop``, reverse subsystem order), remove the cgroups, unmount if the
start mounted, and delete the state file.  Every step runs even when an earlier one
failed; the failures are reported together.

The plugins called are the ones the state file names (and active plugins that recorded
nothing, whose cleanup must cope with that).  A recorded plugin that cannot be called
refuses the teardown before any step (:mod:`vzcore.lifecycle.recorded`), unless
``force``: then its record is dropped and named as left behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vzcore.container import Container
from vzcore.ctgroups import kill_processes
from vzcore.engine import Engine
from vzcore.errors import CleanupError, VzError
from vzcore.faults import checkpoint
from vzcore.lifecycle.mount import is_mounted, umount_ct
from vzcore.linux import mounts
from vzcore.runtime import Run, State


def teardown(engine: Engine, ct: Container, state: State, *, umount: bool, what: str,
             force: bool = False, options: Mapping[str, Any] | None = None) -> None:
    """Remove everything ``state`` records for ``ct`` (and unmount it with ``umount``);
    ``options`` are the verb's flags the ``vz_post_stop`` hooks see (``run.options``).

    Raises :class:`RecordedPluginUnavailable` before any step when a recorded plugin
    cannot be called (with ``force``: goes on without it, drops its record and warns), and
    :class:`CleanupError` listing every step that failed; the state file is then kept, so
    the next command retries.
    """
    from vzcore.lifecycle import recorded  # here: a start imports this module for rollback

    dropped = recorded.check(engine.plugins, ct, state, verb=what, force=force)
    errors: list[BaseException] = []
    shared = False  # the groups hold a process that is not the CT's: they stay
    try:
        kill_processes(ct, state)
    except VzError as exc:
        errors.append(exc)
        shared = True
    checkpoint("teardown:killed")
    run = Run(ct, state, engine.plugins, options=dict(options or {}))
    skip = {u.plugin for u in dropped if u.plugin}
    engine.plugins.run_each("vz_post_stop", reverse=True, on_error=errors.append, ct=ct, run=run,
                            only=lambda name: name not in skip)
    checkpoint("teardown:post-stop-done")
    if state.cgroups is not None and not shared:
        try:
            state.cgroups.remove()
        except VzError as exc:
            errors.append(exc)
    checkpoint("teardown:cgroups-removed")
    if umount:
        try:
            if any(not u.plugin for u in dropped):  # no layout provider: the core unmounts
                if is_mounted(ct):
                    mounts.umount(ct.root, detach=True)
            else:
                umount_ct(engine, ct, state.variants.get("VE_LAYOUT"))
        except (VzError, OSError) as exc:
            errors.append(exc)
        checkpoint("teardown:unmounted")
    if errors:
        raise CleanupError(f"CT {ct.ctid}: {what} incomplete", errors)
    for u in dropped:
        engine.warn(f"warning: CT {ct.ctid}: {u.describe()}; dropped (--force): "
                    "what it made beyond the CT's processes, cgroups and mounts may remain on "
                    "the host: remove it by hand")
    state.remove()
