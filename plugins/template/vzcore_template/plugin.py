"""Hook implementations of the template plugin (subsystem ``template``, layout ``simfs``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore import areas, hookimpl
from vzcore.errors import DestroyError, VzError
from vzcore.linux import mounts, safefs
from vzcore.paths import DEFAULTS
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Command, Parameter

BUILTIN = "busybox"
LAYOUT = "simfs"
OVERLAY = "overlay"
"""The disk plugin's layout whose lower layer is a shared tree this plugin unpacks."""


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="template",
                      summary="OS templates (built-in busybox, cached tarballs); simfs layout",
                      variants={"VE_LAYOUT": (LAYOUT,)})


@hookimpl
def vz_commands() -> Iterable[Command]:
    from vzcore.params import Command

    yield Command(name="template", target="vzcore_template.cli:template",
                  summary="Build, list and remove OS templates (debootstrap)")


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore.values import Text

    yield Parameter(name="ostemplate", key="OSTEMPLATE", on_create=True,
                    type=Text(pattern=r"[A-Za-z0-9][A-Za-z0-9._+-]*",
                              explanation="a template name: letters, digits, '.', '_', '+', '-'",
                              metavar="NAME"),
                    help="OS template: 'busybox' (built in) or a tarball NAME.tar.* in "
                         "the template cache")


_shown = [-1]


def _progress(done: int, total: int) -> None:
    percent = 100 * done // total if total else 100
    if sys.stderr.isatty() and percent != _shown[0]:  # once per percent, not per member
        _shown[0] = percent
        sys.stderr.write(f"\rUnpacking template: {percent:3d}%")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cache_dir(ct: Container) -> Path:
    return ct.paths.host(ct.get("TEMPLATE") or DEFAULTS["TEMPLATE"]) / "cache"


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """At create, the template must exist before anything is written."""
    if verb != "create":
        return
    name = ct.config.get("OSTEMPLATE") or BUILTIN
    if name == BUILTIN:
        from vzcore_template import busybox

        busybox.find_static_busybox()
    else:
        from vzcore_template import tarball

        tarball.find(_cache_dir(ct), name)


@hookimpl
def vz_create(ct: Container) -> None:
    # simfs: the private area is the CT's tree.  Another layout's provider made its area
    # and mounted the new file system at VE_ROOT (vz_layout_create): the template fills that.
    if ct.layout == OVERLAY:  # the layout's lower layer: the template's shared tree
        from vzcore_template import shared_tree

        shared_tree.attach(ct, _source(ct))
        return
    target = ct.private if ct.layout == LAYOUT else ct.root
    if ct.layout == LAYOUT:
        areas.create(ct.private, ct.ctid, 0o755)
    name = ct.get("OSTEMPLATE") or BUILTIN
    idmap = ct.idmap
    if name == BUILTIN:
        from vzcore_template import busybox

        busybox.populate(target)
        if idmap is not None:  # the CT's root is host LOCAL_UID: its files are owned so
            safefs.shift_ownership(target, idmap.host_uid, idmap.host_gid)
        return
    from vzcore_template import tarball

    skipped = tarball.unpack(tarball.find(_cache_dir(ct), name), target, _progress, idmap)
    if skipped:
        sys.stderr.write(f"Warning: CT {ct.ctid}: template {name}: left out {len(skipped)} device "
                         f"node(s) or socket(s) ({', '.join(skipped[:5])}); /dev is made at start\n")


def _source(ct: Container) -> Path:
    """The file a template is made from: its tarball, or the static busybox."""
    name = ct.get("OSTEMPLATE") or BUILTIN
    if name == BUILTIN:
        from vzcore_template import busybox

        return Path(busybox.find_static_busybox())
    from vzcore_template import tarball

    return tarball.find(_cache_dir(ct), name)


@hookimpl
def vz_mount(ct: Container) -> None:
    if ct.layout == LAYOUT:
        mounts.bind(ct.private, ct.root, recursive=False)


@hookimpl
def vz_umount(ct: Container) -> None:
    if ct.layout == LAYOUT:
        mounts.umount(ct.root)


@hookimpl
def vz_destroy(ct: Container) -> None:
    if ct.layout == OVERLAY:
        from vzcore_template import shared_tree

        shared_tree.release(ct, _source_or_none(ct))
        return
    if ct.layout != LAYOUT:
        return
    # The engine checked the area (destroy); this also guards create's rollback, which
    # must never remove an area another CT's create made meanwhile.
    marker = areas.read_marker(ct.private)
    if marker is not None and marker != str(ct.ctid):
        raise DestroyError(f"CT {ct.ctid}: private area {ct.private} is marked as CT {marker}'s; "
                           "left in place")
    safefs.remove_tree(ct.private)


def _source_or_none(ct: Container) -> Path | None:
    try:
        return _source(ct)
    except VzError:  # the template was removed: its trees are stale
        return None
