"""``vzctl stop``: ask init to shut down, wait ``STOP_TIMEOUT``, kill the rest, clean up."""

from __future__ import annotations

from typing import Any

from vzcore.container import Container
from vzcore.ctgroups import thaw_if_owned
from vzcore.engine import Engine
from vzcore.errors import InvalidValue, NotRunning, PluginError, StopError, VzError
from vzcore.faults import checkpoint
from vzcore.lifecycle import recorded
from vzcore.lifecycle.areas import check_areas
from vzcore.lifecycle.mount import is_mounted, umount_ct
from vzcore.lifecycle.teardown import teardown
from vzcore.linux.procfs import wait_exit
from vzcore.runtime import Run

DEFAULT_STOP_TIMEOUT = 120


def stop_timeout(ct: Container) -> int:
    text = ct.get("STOP_TIMEOUT") or "0"
    try:
        seconds = int(text)
    except ValueError:
        raise InvalidValue(f"CT {ct.ctid}: STOP_TIMEOUT={text!r} is not a number of seconds; "
                           f"fix it with 'vzctl set {ct.ctid} --stop-timeout N --save'") from None
    return seconds if seconds > 0 else DEFAULT_STOP_TIMEOUT


def stop(engine: Engine, ct: Container, *, fast: bool = False, skip_umount: bool = False,
         force: bool = False, **options: Any) -> None:
    """Stop ``ct`` (``fast``: kill at once).  A stopped CT is only unmounted (unless
    ``skip_umount``), and :class:`NotRunning` (31) says it was not running, as vzctl does.
    ``options`` go to the stop hooks' ``run.options`` (``batch`` in a stop-all).

    A plugin named in the state file that cannot be called refuses the stop before any
    effect; ``force`` stops anyway and drops that plugin's record
    (:mod:`vzcore.lifecycle.recorded`).
    """
    ct.require_exists()
    check_areas(engine, ct, keys=("VE_ROOT",))
    timeout = stop_timeout(ct)
    with engine.lock(ct, "stop"):
        state = engine.state(ct)
        if state is None:
            if not skip_umount and is_mounted(ct):
                umount_ct(engine, ct)
            raise NotRunning(f"Unable to stop: CT {ct.ctid} is not running")
        recorded.check(engine.plugins, ct, state, verb="stop", force=force)
        if not state.is_running:
            engine.say(f"CT {ct.ctid} is not running; cleaning up what its last run left")
        else:
            if state.recovered:
                engine.warn(f"CT {ct.ctid} runs without its state file; stopping it as found "
                            "in its cgroups")
            engine.say(f"Stopping CT {ct.ctid} ...")
            checkpoint("stop:locked")
            if thaw_if_owned(state):
                engine.say(f"CT {ct.ctid} was frozen; thawed it so that it can shut down")
            frozen = state.cgroups.frozen() if state.cgroups is not None else []
            if frozen and not fast:  # a frozen init cannot shut down: do not wait for it
                engine.warn(f"CT {ct.ctid} is frozen by {frozen[0]}; killing it")
                fast = True
            if not fast:
                run = Run(ct, state, engine.plugins, options=dict(options))
                # a refusal (a failing CTID.stop: 79) leaves the CT running, as OpenVZ
                engine.plugins.run_each("vz_pre_stop", ct=ct, run=run)
                _shut_down(engine, ct, run, timeout)
                checkpoint("stop:shut-down")
        try:
            teardown(engine, ct, state, umount=not skip_umount, what="stop", force=force,
                     options=options)
        except VzError as exc:
            raise StopError(str(exc)) from exc
    engine.say(f"CT {ct.ctid} stopped")


def _shut_down(engine: Engine, ct: Container, run: Run, timeout: int) -> None:
    def report(error: PluginError) -> None:
        engine.warn(f"warning: {error}; killing the CT instead")

    engine.plugins.run_each("vz_stop", ct=ct, run=run, on_error=report)
    assert run.state.init is not None
    if not wait_exit(run.state.init, timeout):
        engine.warn(f"CT {ct.ctid} did not stop within {timeout} s (STOP_TIMEOUT); killing it")
