"""``vzctl mount`` / ``umount``: the CT's root file system at ``VE_ROOT``.

The plugin offering the CT's layout (``VE_LAYOUT``, recorded in its config at create)
does the work in ``vz_mount`` / ``vz_umount``; no other plugin is asked.  Every active
plugin gets the moments around them (``vz_pre_mount``, ``vz_post_mount``,
``vz_pre_umount``, ``vz_post_umount``: OpenVZ's premount, mount, umount and postumount
action scripts are a plugin on these).  A start records
the layout it mounted in the state file (``State.variants``), and its teardown unmounts
with that layout's provider, whatever the config says by then.
"""

from __future__ import annotations

from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import (
    AlreadyMounted,
    AlreadyRunning,
    CleanupError,
    MountError,
    NotMounted,
    PrivateAreaMissing,
    UmountError,
    VzError,
)
from vzcore.lifecycle.areas import check_areas
from vzcore.linux.mounts import is_mount_point


def check_layout(engine: Engine, ct: Container) -> None:
    """Refuse a CT whose layout no active plugin offers."""
    offers = engine.plugins.variant_offers("VE_LAYOUT")
    if ct.layout not in offers:
        installed = ", ".join(sorted(offers)) or "none"
        raise MountError(
            f"CT {ct.ctid} uses layout '{ct.layout}' (VE_LAYOUT), which no active plugin offers "
            f"(offered: {installed}); install or enable the plugin that provides it")


def layout_provider(engine: Engine, ct: Container, layout: str | None = None) -> str:
    """The active plugin offering ``layout`` (default: the CT's ``VE_LAYOUT``)."""
    layout = layout or ct.layout
    provider = engine.plugins.variant_offers("VE_LAYOUT").get(layout)
    if provider is None:
        raise MountError(f"CT {ct.ctid}: no active plugin offers layout '{layout}' (VE_LAYOUT); "
                         "install or enable the plugin that provides it")
    return provider


def is_mounted(ct: Container) -> bool:
    return is_mount_point(ct.root)


def mount_ct(engine: Engine, ct: Container) -> None:
    """Mount the CT's root at ``ct.root``; on failure nothing stays mounted."""
    check_layout(engine, ct)
    if is_mounted(ct):
        raise AlreadyMounted(f"CT {ct.ctid} is already mounted at {ct.root}")
    if not ct.private.exists():
        raise PrivateAreaMissing(
            f"CT {ct.ctid}: private area {ct.private} does not exist; recreate the CT or "
            "fix VE_PRIVATE in its config")
    provider = layout_provider(engine, ct)
    engine.plugins.run_each("vz_pre_mount", ct=ct)  # raising: nothing is mounted yet
    try:
        ct.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        engine.plugins.run_each("vz_mount", ct=ct, only=provider.__eq__)
    except (VzError, OSError) as exc:
        try:
            umount_ct(engine, ct, hooks=False)
        except VzError as undo:
            engine.warn(f"warning: {undo}")
        raise MountError(f"CT {ct.ctid}: cannot mount: {exc}") from exc
    if not is_mounted(ct):
        raise MountError(f"CT {ct.ctid}: no plugin mounted layout '{ct.layout}' at {ct.root}")
    try:
        engine.plugins.run_each("vz_post_mount", ct=ct)
    except BaseException:
        try:  # as OpenVZ: the layout unmounts, no umount hook runs for a half mount
            umount_ct(engine, ct, hooks=False)
        except VzError as undo:
            engine.warn(f"warning: {undo}")
        raise


def umount_ct(engine: Engine, ct: Container, layout: str | None = None, *,
              hooks: bool = True) -> None:
    """Unmount the CT's root with the provider of ``layout`` (the one a start recorded;
    default: the CT's ``VE_LAYOUT``).  ``hooks``: call ``vz_pre_umount`` before and
    ``vz_post_umount`` after, when the root is mounted (not for a mount that never
    completed, nor create's area)."""
    errors: list[BaseException] = []
    provider = layout_provider(engine, ct, layout)
    hooks = hooks and is_mounted(ct)  # nothing to undo around a root that is not mounted
    if hooks:
        engine.plugins.run_each("vz_pre_umount", reverse=True, ct=ct)  # raising: stays mounted
    engine.plugins.run_each("vz_umount", reverse=True, on_error=errors.append, ct=ct,
                            only=provider.__eq__)
    if errors:
        raise CleanupError(f"CT {ct.ctid}: unmount incomplete", errors)
    if is_mounted(ct):
        raise UmountError(f"CT {ct.ctid}: {ct.root} is still mounted after every plugin's vz_umount")
    if hooks:
        engine.plugins.run_each("vz_post_umount", reverse=True, ct=ct)


def mount_verb(engine: Engine, ct: Container) -> None:
    """``vzctl mount CTID``."""
    ct.require_exists()
    check_layout(engine, ct)
    check_areas(engine, ct)
    with engine.lock(ct, "mount"):
        mount_ct(engine, ct)
    engine.say(f"CT {ct.ctid} is mounted")


def umount_verb(engine: Engine, ct: Container) -> None:
    """``vzctl umount CTID``: refuses a running CT."""
    ct.require_exists()
    check_areas(engine, ct, keys=("VE_ROOT",))
    with engine.lock(ct, "umount"):
        state = engine.state(ct)
        if state is not None and state.is_running:
            raise AlreadyRunning(f"CT {ct.ctid} is running; stop it first with 'vzctl stop {ct.ctid}'")
        if not is_mounted(ct):
            raise NotMounted(f"CT {ct.ctid} is not mounted")
        umount_ct(engine, ct)
    engine.say(f"CT {ct.ctid} is unmounted")
