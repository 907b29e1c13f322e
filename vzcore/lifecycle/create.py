"""``vzctl create`` and ``vzctl destroy``."""

from __future__ import annotations

from collections.abc import Mapping

from vzcore import areas, idmap
from vzcore.conffile import ConfigFile
from vzcore.container import FIRST_USER_CTID, Container
from vzcore.engine import Engine
from vzcore.errors import (
    AlreadyMounted,
    AlreadyRunning,
    DestroyError,
    InvalidValue,
    PrivateAreaExists,
    TemplateNotSet,
    VzError,
)
from vzcore.faults import checkpoint
from vzcore.lifecycle import privileged
from vzcore.lifecycle.areas import check_areas, check_removable
from vzcore.lifecycle.mount import check_layout, is_mounted, layout_provider, umount_ct
from vzcore.lifecycle.teardown import teardown
from vzcore.lock import CtLock
from vzcore.paths import DEFAULTS

CP_CONFIG_ERROR = 82  # VZ_CP_CONFIG: sample config missing


def create(engine: Engine, ct: Container, given: Mapping[str, list[str]], *,
           config_sample: str | None = None) -> None:
    """Create ``ct`` from its OS template with the options in ``given`` (option -> texts)."""
    if ct.ctid < FIRST_USER_CTID:
        raise InvalidValue(f"CT ID {ct.ctid} is reserved (IDs up to {FIRST_USER_CTID - 1} belong "
                           f"to the host); use {FIRST_USER_CTID} or higher")
    if ct.exists:
        raise PrivateAreaExists(f"CT {ct.ctid} already exists ({ct.config.path}); choose "
                                f"another ID or destroy it first with 'vzctl destroy {ct.ctid}'")
    plugins = engine.plugins
    plugins.require("template", "create")
    sample = _sample(engine, ct, config_sample)
    ct.config = ConfigFile(ct.config.path, sample.text().splitlines() if sample else [])
    current = {key: ct.get(key) for key in engine.registry.owners}
    changes, _parsed = engine.registry.plan_changes(ct.ctid, current, given, verb="create")
    ct.config.update(changes.new_values())
    ct.config.update({
        "VE_ROOT": ct.get("VE_ROOT") or DEFAULTS["VE_ROOT"],
        "VE_PRIVATE": ct.get("VE_PRIVATE") or DEFAULTS["VE_PRIVATE"],
        "VE_LAYOUT": ct.layout,
    })
    ostemplate = ct.config.get("OSTEMPLATE") or engine.global_config.get("DEF_OSTEMPLATE")
    if not ostemplate:
        raise TemplateNotSet(f"CT {ct.ctid}: no OS template; give --ostemplate NAME or set "
                             "DEF_OSTEMPLATE in vz.conf")
    ct.config.set("OSTEMPLATE", ostemplate)
    check_layout(engine, ct)
    check_areas(engine, ct, creating=True)
    if ct.private.exists():
        raise PrivateAreaExists(f"CT {ct.ctid}: private area {ct.private} already exists; "
                                "remove it or choose another VE_PRIVATE")
    engine.registry.check_minimums(ct, sample=sample.path if sample else None)
    plugins.run_each("vz_validate", ct=ct, changes=changes, verb="create")
    privileged.check(engine, ct, "create",
                     privileged=privileged.is_privileged_at_create(engine, ct))

    with engine.lock(ct, "create"):
        # One create at a time chooses an ID range and writes its config, so two new CTs
        # never get the same range.
        with CtLock(engine.lock_dir / "create.lck", ct.ctid, "create", wait=True):
            if ct.config.path.exists():
                raise PrivateAreaExists(f"CT {ct.ctid} was created by another vzctl meanwhile")
            # Again under the lock: a concurrent create may have taken the same paths.
            check_areas(engine, ct, creating=True)
            _choose_id_range(engine, ct)
            ct.config.save()
        checkpoint("create:config-written")
        engine.say(f"Creating CT {ct.ctid} from template {ct.get('OSTEMPLATE')} ...")
        try:
            _populate(engine, ct)
        except BaseException:
            errors: list[BaseException] = []
            plugins.run_each("vz_destroy", reverse=True, on_error=errors.append, ct=ct)
            for error in errors:
                engine.warn(f"warning: while undoing the create: {error}")
            ct.config.path.unlink(missing_ok=True)
            raise
    engine.say(f"CT {ct.ctid} was created")


def _populate(engine: Engine, ct: Container) -> None:
    """Make the private area in the CT's layout and fill it from the template; a layout
    other than simfs mounts its new file system at VE_ROOT for it, unmounted at the end."""
    plugins = engine.plugins
    plugins.run_each("vz_layout_create", ct=ct, only=layout_provider(engine, ct).__eq__)
    try:
        checkpoint("create:area-made")
        plugins.run_each("vz_create", ct=ct)
        _mark(engine, ct)
        checkpoint("create:populated")
        plugins.run_each("vz_quota_init", ct=ct)
    finally:
        if is_mounted(ct):
            umount_ct(engine, ct, hooks=False)  # no mount hook ran for the new area


def _choose_id_range(engine: Engine, ct: Container) -> None:
    """Write LOCAL_UID/LOCAL_GID into the new CT's config: given ones, or vz.conf's
    ``0`` (privileged), or a range of its own above vz.conf's base."""
    for key in ("LOCAL_UID", "LOCAL_GID"):
        if ct.config.get(key) is not None:
            continue
        default = engine.global_config.get(key) or engine.global_config.get("LOCAL_UID")
        if default is not None and default.strip() == "0":
            ct.config.set(key, "0")
            continue
        base = int(default) if default and default.strip().isdigit() else idmap.DEFAULT_BASE
        taken = []
        for other in engine.ctids():
            value = engine.container(other).config.get(key)
            if value and value.strip().isdigit() and int(value) > 0:
                taken.append(int(value))
        ct.config.set(key, str(idmap.allocate(base, taken)))
    try:
        ct.idmap  # noqa: B018 - validates the pair
    except VzError as exc:
        raise InvalidValue(str(exc)) from None


def _sample(engine: Engine, ct: Container, name: str | None) -> ConfigFile | None:
    chosen = name or engine.global_config.get("CONFIGFILE")
    if not chosen:
        return None
    path = engine.paths.sample_conf(chosen)
    if not path.exists():
        if name:
            raise VzError(f"CT {ct.ctid}: sample config '{name}' not found ({path}); list "
                          f"{engine.paths.conf_dir}/ve-*.conf-sample for the names",
                          exit_code=CP_CONFIG_ERROR)
        engine.warn(f"warning: CONFIGFILE={chosen} in vz.conf names no sample ({path}); ignored")
        return None
    sample = ConfigFile.load(path)
    sample.set("ORIGIN_SAMPLE", chosen)
    return sample


def _mark(engine: Engine, ct: Container) -> None:
    """Mark the new private area as this CT's (the layout plugin may have done it already,
    right after making the directory); without the mark, destroy needs --force."""
    if not ct.private.is_dir() or areas.read_marker(ct.private) is not None:
        return
    if not areas.write_marker(ct.private, ct.ctid):
        engine.warn(f"warning: CT {ct.ctid}: the file system of {ct.private} keeps no "
                    f"{areas.MARKER} attribute; 'vzctl destroy' will need --force")


def destroy(engine: Engine, ct: Container, *, force: bool = False) -> None:
    """Remove a stopped, unmounted CT: its private area, root mount point and config.

    The private area is removed only when it is provably the CT's (``check_removable``);
    ``force`` accepts an unmarked one that passes every path check.
    """
    ct.require_exists()
    check_layout(engine, ct)
    check_areas(engine, ct)
    check_removable(ct, force=force)
    with engine.lock(ct, "destroy"):
        state = engine.state(ct)
        if state is not None:
            if state.is_running:
                raise AlreadyRunning(f"CT {ct.ctid} is running; stop it first with "
                                     f"'vzctl stop {ct.ctid}'")
            teardown(engine, ct, state, umount=True, what="cleanup of the last run")
        if is_mounted(ct):
            raise AlreadyMounted(f"CT {ct.ctid} is mounted; unmount it first with "
                                 f"'vzctl umount {ct.ctid}'")
        engine.say(f"Destroying CT {ct.ctid} ...")
        checkpoint("destroy:locked")
        errors: list[BaseException] = []
        engine.plugins.run_each("vz_destroy", reverse=True, on_error=errors.append, ct=ct)
        checkpoint("destroy:private-removed")
        if errors:
            raise DestroyError(f"CT {ct.ctid}: destroy incomplete ({'; '.join(map(str, errors))}); "
                               "fix the cause and run it again")
        try:
            ct.root.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            engine.warn(f"warning: CT {ct.ctid}: cannot remove {ct.root}: {exc.strerror}")
        ct.config.path.rename(ct.config.path.with_name(f"{ct.ctid}.conf.destroyed"))
    engine.say(f"CT {ct.ctid} was destroyed")
