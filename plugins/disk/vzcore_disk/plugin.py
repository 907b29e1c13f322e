"""Hook implementations of the disk plugin (subsystem ``quota``, layout ``image``).

One plugin for the layouts that limit disk use and for the first-level quota on them: the
limits *are* properties of the layout (an image's size, its inode count), so the code that
makes the area is the code that enforces them (docs/disk.md says why).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Command, Field, Parameter
    from vzcore.runtime import Run

LAYOUTS = ("image", "btrfs", "overlay")
KEYS = ("DISKSPACE", "DISKINODES", "QUOTATIME")


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="quota",
                      summary="disk layouts image (ext4 in a sparse file on a loop device) and "
                              "btrfs (a subvolume in a qgroup), overlay (a template's shared tree "
                              "under an image); diskspace and diskinodes limits",
                      variants={"VE_LAYOUT": LAYOUTS},
                      child_modules=("vzcore_disk.ugid",))


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore_disk import ugid
    from vzcore_disk.limits import DISKINODES, DISKSPACE, QUOTATIME

    yield Parameter(name="diskspace", key="DISKSPACE", type=DISKSPACE, live=True, on_create=True,
                    help="disk space soft[:hard] limit in 1K blocks (K, M, G, T suffixes); "
                         "layout image: the hard limit is the image's size (grows online, "
                         "shrinks only when the CT is stopped)")
    yield Parameter(name="diskinodes", key="DISKINODES", type=DISKINODES, live=True,
                    on_create=True,
                    help="inode soft[:hard] limit; layout image: the hard limit is the file "
                         "system's inode count, fixed at create")
    yield Parameter(name="quotatime", key="QUOTATIME", type=QUOTATIME, live=True,
                    on_create=True,
                    help="grace time in seconds during which use may stay above the soft "
                         "limits")
    yield Parameter(name="quotaugidlimit", key="QUOTAUGIDLIMIT", type=ugid.QUOTAUGIDLIMIT,
                    on_create=True,
                    help="second-level quota: N > 0 gives the CT's root ordinary user and "
                         "group quota on its own users (setquota, repquota inside); layout "
                         "image (in a user namespace through the seccomp supervisor: "
                         "--syscall-intercept default); N is the most user and group IDs meant to "
                         "have entries (shown by vzctl quota); a change takes effect at the "
                         "next start")


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field

    yield Field(name="diskspace", header="DQBLOCKS", width=10, kind="quota",
                help="disk space used in 1K blocks (.s soft, .h hard limit)")
    yield Field(name="diskinodes", header="DQINODES", width=10, kind="quota",
                help="inodes used (.s soft, .h hard limit)")


@hookimpl
def vz_commands() -> Iterable[Command]:
    from vzcore.params import Command

    yield Command(name="quota", target="vzcore_disk.cli:quota",
                  summary="Show a CT's disk quota: usage, soft and hard limits, grace")
    yield Command(name="convert", target="vzcore_disk.convert_cli:convert",
                  summary="Move a stopped CT's files into another layout")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    from vzcore_disk import checks

    checks.validate(ct, changes, verb)  # raises InvalidValue naming the CT and the fix


def _layout_does(ct: Container, action: str) -> None:
    """Run ``action`` (``make``, ``mount``, ``umount``) of the CT's layout module, when the
    layout is this plugin's (the engine routes these hooks to the layout's provider)."""
    from vzcore_disk import layouts, watch

    layout = layouts.of(ct)
    if layout is None:
        return
    if action == "make":  # a new CT: no one watches it yet
        layout.make(ct)
        return
    with watch.guard(ct):  # never beside the grace watcher's look at the CT
        getattr(layout, action)(ct)


@hookimpl
def vz_layout_create(ct: Container) -> None:
    _layout_does(ct, "make")


@hookimpl
def vz_quota_init(ct: Container) -> None:
    if ct.layout in ("image", "btrfs"):  # an overlay's upper was made the CT root's
        from vzcore_disk import image

        image.own_unshifted(ct.root, ct.root_owner)
    elif ct.layout == "simfs":
        from vzcore_disk import simfs_area

        simfs_area.limit_new(ct)


@hookimpl
def vz_mount(ct: Container) -> None:
    _layout_does(ct, "mount")


@hookimpl
def vz_umount(ct: Container) -> None:
    _layout_does(ct, "umount")


def _ugid_quota(ct: Container) -> bool:
    return ct.layout == "image" and (ct.get("QUOTAUGIDLIMIT") or "0") != "0"


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    """A btrfs CT with a diskspace limit names its qgroup's files for the notify plugin,
    which answers statfs inside with them (see docs/disk.md, "df inside a btrfs CT"); an
    image CT in a user namespace with the second-level quota asks it to make its root's
    quotactl(2) (docs/disk.md, "The second-level quota")."""
    if _ugid_quota(ct) and ct.idmap is not None:
        from vzcore.linux.notify_answers import QUOTACTL_OPTION

        run.options[QUOTACTL_OPTION] = True
    if ct.layout != "btrfs":
        return
    from vzcore.linux.notify_answers import DISK_FIGURES_OPTION
    from vzcore_disk import btrfs_area

    figures = btrfs_area.statfs_figures(ct)
    if figures is not None:
        run.options[DISK_FIGURES_OPTION] = figures


@hookimpl
def vz_post_mount(ct: Container) -> None:
    """A CT with a soft limit below its hard one goes on the grace watcher's list (the
    daemon that acts on its grace in time, :mod:`vzcore_disk.watch`).  A simfs CT's grace
    is looked at here, as the other layouts' is in their mount."""
    from vzcore_disk import layouts, watch

    layout = layouts.limiter(ct)
    if layout is None:
        return
    if ct.layout == "simfs":
        with watch.guard(ct):
            layout.enforce(ct)
    if watch.needs_watch(ct):
        watch.watch(ct)


@hookimpl
def vz_post_umount(ct: Container) -> None:
    """Off the grace watcher's list (the last CT's unmount stops the daemon)."""
    from vzcore_disk import watch

    watch.unwatch(ct)


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    """A CT in a user namespace with the second-level quota: its root device's node (see
    :func:`vz_finalize_child`) is asked of the isolation plugin, which builds the CT's /dev
    next in the builder (the host's root: init cannot mknod a block device)."""
    if _ugid_quota(ct) and ct.idmap is not None:
        from vzcore.linux.devnodes import BLOCK_NODES_OPTION
        from vzcore_disk import ugid

        run.options.setdefault(BLOCK_NODES_OPTION, []).append(
            list(ugid.root_node(run.root.rstrip("/") or "/")))


@hookimpl
def vz_finalize_child(ct: Container, run: Run) -> None:
    """With the second-level quota on, give a privileged CT's /dev the node of its root's
    device, which the quota tools find in the CT's mount table and hand to quotactl(2).
    Here, just after the root switch, because the isolation plugin mounts that /dev after
    the ``quota`` subsystem's vz_setup_child; capabilities are dropped after this."""
    if _ugid_quota(ct) and ct.idmap is None:
        from vzcore_disk import ugid

        ugid.make_root_node()


@hookimpl
def vz_host_areas(ct: Container) -> Iterable[str]:
    """The btrfs pool (the CT's and vz.conf's ``BTRFS_POOL``): btrfs CTs' trees lie there."""
    for text in sorted({ct.get("BTRFS_POOL") or "", ct.global_config.get("BTRFS_POOL") or ""}):
        if text.startswith("/"):
            yield str(ct.paths.host(text))


@hookimpl
def vz_destroy(ct: Container) -> None:
    from vzcore_disk import convert, layouts

    convert.discard(ct)  # what a killed 'vzctl convert' left beside the area
    layout = layouts.limiter(ct)  # simfs: its project's limits (the template removes the tree)
    if layout is not None:
        layout.destroy(ct)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    from vzcore_disk import layouts

    layout = layouts.limiter(ct)
    if layout is None or not any(key in changes for key in KEYS):
        return
    from vzcore_disk import limits, watch

    old = limits.of(ct)
    new = limits.of(ct, {key: changes[key].new for key in KEYS if key in changes})
    with watch.guard(ct):
        layout.resize(ct, old, new)
        if layout.mounted(ct):
            layout.enforce(ct, new)
    if layout.mounted(ct) and watch.needs_watch(ct, new):  # a soft limit given now
        watch.watch(ct)


@hookimpl
def vz_collect(ct: Container, run: Run | None, fields: Collection[str]) -> Mapping[str, Any]:
    if not {"diskspace", "diskinodes"} & set(fields):
        return {}
    from vzcore_disk import report

    return report.fields(ct, set(fields))
