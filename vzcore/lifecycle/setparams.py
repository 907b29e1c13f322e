"""``vzctl set``: change parameters of a running CT at once and/or save them.

``vzctl set 0`` changes the host's own settings, as in OpenVZ: only options whose
parameter names a ``host_key`` are accepted; they are applied at once (the host always
runs) and, with ``--save``, written to ``vz.conf`` under that key (``VE0CPUUNITS``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from vzcore.changes import Change, ChangeSet
from vzcore.container import FIRST_USER_CTID, Container
from vzcore.engine import Engine
from vzcore.errors import InvalidValue, VzError
from vzcore.faults import checkpoint
from vzcore.lifecycle.areas import check_areas
from vzcore.runtime import Run


def set_parameters(engine: Engine, ct: Container, given: Mapping[str, list[str]], *,
                   save: bool, setmode: str | None = None, force: bool = False) -> list[str]:
    """Apply the options in ``given`` (option -> texts); ``save`` also writes the config.

    :param setmode: for a running CT and options that need a restart: ``ignore`` drops
        the warning; ``restart`` (with ``save``) asks the caller to restart the CT.
    :param force: (with ``save``) save even when the running CT cannot take the change
        live (a kernel or plugin refusal in ``vz_apply``); never skips a check of the
        values, the minimums, the areas, or any ``vz_validate``.
    :returns: the options given that take effect only at the next start (empty for a
        stopped CT): the caller restarts the CT for them with ``setmode="restart"``.
    """
    if ct.is_host:
        set_host_parameters(engine, ct, given, save=save)
        return []
    ct.require_exists()
    registry = engine.registry
    current = {key: ct.get(key) for key in registry.owners}
    changes, _parsed = registry.plan_changes(ct.ctid, current, given, verb="set")
    # A running CT gets every given key, also one whose text equals the config: its live
    # value may differ (an earlier set without --save), and setting it must take effect.
    given_keys = {registry.parameters[option].key for option in given}
    live_changes = ChangeSet({**changes, **{key: Change(key, current.get(key), current.get(key))
                                            for key in given_keys if key not in changes}})
    unsaved = {p.key for p in registry.unique_parameters() if not p.saved} & set(changes)
    engine.plugins.run_each("vz_validate", ct=ct, changes=live_changes, verb="set")
    with engine.lock(ct, "set"):
        state = engine.state(ct)
        running = state is not None and state.is_running
        if running:  # live changes write files below VE_ROOT (host name, resolv.conf)
            check_areas(engine, ct, keys=("VE_ROOT",))
        checkpoint("set:locked")
        restart_needed: list[str] = []
        if not running and not changes:
            engine.say(f"CT {ct.ctid}: nothing to change")
            return []
        if running:
            assert state is not None
            try:
                engine.plugins.run_each("vz_apply", ct=ct, changes=live_changes,
                                        run=Run(ct, state, engine.plugins))
            except VzError as exc:
                if not (force and save):
                    raise
                engine.warn(f"warning: CT {ct.ctid}: the running CT did not take the change "
                            f"({exc}); saving it anyway (--force): it applies at the next start")
            checkpoint("set:applied")
            restart_needed = sorted(
                f"--{p.name}" for p in registry.unique_parameters()
                if p.key in changes and not p.live and p.name in given
            )
            if restart_needed and setmode is None:
                engine.warn(f"warning: CT {ct.ctid}: {', '.join(restart_needed)} take effect at "
                            "the next start" + ("; --setmode restart restarts it now" if save
                                                else "; add --save to keep them"))
        elif save or unsaved:
            # an action such as --userpasswd works on the stopped CT's files (OpenVZ mounts it)
            with _mounted(engine, ct, needed=bool(unsaved)):
                engine.plugins.run_each("vz_apply", ct=ct, changes=changes, run=None)
            if not save:
                return []
        else:
            engine.warn(f"warning: CT {ct.ctid} is not running and --save was not given: "
                        "nothing was changed; add --save to store the settings")
            return []
        if save:
            ct.config.update({k: v for k, v in changes.new_values().items() if k not in unsaved})
            ct.config.save()
            checkpoint("set:saved")
            engine.say(f"Saved parameters for CT {ct.ctid}")
        return restart_needed


@contextmanager
def _mounted(engine: Engine, ct: Container, *, needed: bool) -> Iterator[None]:
    """The stopped CT's root mounted at VE_ROOT for the block when ``needed`` and not
    mounted already; unmounted again afterwards (also when the block fails)."""
    from vzcore.lifecycle.mount import is_mounted, mount_ct, umount_ct

    if not needed or is_mounted(ct):
        yield
        return
    mount_ct(engine, ct)
    try:
        yield
    finally:
        umount_ct(engine, ct)


def set_host_parameters(engine: Engine, host: Container, given: Mapping[str, list[str]], *,
                        save: bool) -> None:
    """``vzctl set 0``: apply host settings at once; ``save`` also writes them to vz.conf.

    Plugins get the change set keyed by the host keys (``VE0CPUUNITS``) with ``run=None``
    and ``ct.is_host`` true.  Every given key is passed on, even when vz.conf already has
    that value, because the live value may differ from it (an earlier set without --save);
    ``old`` is therefore ``None``.
    """
    registry = engine.registry
    host_keys = {p.key: p.host_key for p in registry.unique_parameters() if p.host_key}
    refused = sorted(f"--{o}" for o in given if registry.parameters[o].key not in host_keys)
    if refused:
        accepted = sorted(f"--{p.name}" for p in registry.unique_parameters() if p.host_key)
        raise InvalidValue(
            f"CT 0 is the host: {', '.join(refused)} cannot be set for it; the host takes "
            f"{', '.join(accepted) or 'no options'} (CTs have IDs from {FIRST_USER_CTID})")
    parsed, _values = registry.plan_changes(host.ctid, {}, given, verb="set")
    changes = ChangeSet({host_keys[k]: Change(host_keys[k], None, c.new) for k, c in parsed.items()})
    engine.plugins.run_each("vz_validate", ct=host, changes=changes, verb="set")
    with engine.lock(host, "set"):
        engine.plugins.run_each("vz_apply", ct=host, changes=changes, run=None)
        if save:
            engine.global_config.update(changes.new_values())
            engine.global_config.save()
            engine.say(f"Saved parameters for the host (CT 0) in {engine.global_config.path}")
