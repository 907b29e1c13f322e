"""``vzctl set``: change parameters of a running CT at once and/or save them."""

from __future__ import annotations

from collections.abc import Mapping

from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.faults import checkpoint
from vzcore.runtime import Run


def set_parameters(engine: Engine, ct: Container, given: Mapping[str, list[str]], *,
                   save: bool) -> None:
    """Apply the options in ``given`` (option -> texts); ``save`` also writes the config."""
    ct.require_exists()
    registry = engine.registry
    current = {key: ct.get(key) for key in registry.owners}
    changes, _parsed = registry.plan_changes(ct.ctid, current, given, verb="set")
    engine.plugins.run_each("vz_validate", ct=ct, changes=changes, verb="set")
    if not changes:
        engine.say(f"CT {ct.ctid}: nothing to change")
        return
    with engine.lock(ct, "set"):
        state = engine.state(ct)
        running = state is not None and state.is_running
        checkpoint("set:locked")
        if running:
            assert state is not None
            engine.plugins.run_each("vz_apply", ct=ct, changes=changes,
                                    run=Run(ct, state, engine.plugins))
            checkpoint("set:applied")
            restart_needed = sorted(
                f"--{p.name}" for p in registry.unique_parameters()
                if p.key in changes and not p.live and p.name in given
            )
            if restart_needed:
                engine.warn(f"warning: CT {ct.ctid}: {', '.join(restart_needed)} take effect at "
                            "the next start" + ("" if save else "; add --save to keep them"))
        elif save:
            engine.plugins.run_each("vz_apply", ct=ct, changes=changes, run=None)
        else:
            engine.warn(f"warning: CT {ct.ctid} is not running and --save was not given: "
                        "nothing was changed; add --save to store the settings")
            return
        if save:
            ct.config.update(changes.new_values())
            ct.config.save()
            checkpoint("set:saved")
            engine.say(f"Saved parameters for CT {ct.ctid}")
