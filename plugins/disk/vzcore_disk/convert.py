"""``vzctl convert CTID --layout NAME``: move a stopped CT's files into another layout.

The new area is made beside the old one (``VE_PRIVATE.convert``, mounted at
``VE_ROOT.convert`` when its layout mounts), filled with ``cp -a`` from the mounted old
one, and compared with it file by file (type, mode, owner, size, link target, content).
Only then is it swapped in: the old area is renamed ``VE_PRIVATE.old``, the new one takes
its place, the config names the new layout, and the old area is removed by its own
layout's provider.  ``VE_PRIVATE.convert.json`` journals the conversion before anything is
made, so a convert killed at any point is finished or undone by the next ``vzctl
convert`` of the CT.

From ``overlay`` the copy is of the mounted overlay (what the CT's root sees), and the
shared tree the CT named is released with its old area.  To ``overlay`` the template's
shared tree (the CT's ``OSTEMPLATE``) is attached to the new area by the template plugin
and the upper layer gets only the CT's differences from it
(:mod:`vzcore_disk.overlay_diff`); the new overlay is then mounted and its merged view
compared with the CT's files as any copy is.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore import areas
from vzcore.conffile import ConfigFile
from vzcore.container import Container
from vzcore.errors import AlreadyMounted, AlreadyRunning, InvalidValue, VzError, describe
from vzcore.faults import checkpoint
from vzcore.lifecycle.mount import is_mounted, layout_provider, mount_ct, umount_ct
from vzcore_disk.overlay_diff import Shift, digest, xattrs

if TYPE_CHECKING:
    from vzcore.engine import Engine

CONVERT_ERROR = 3


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def journal_of(ct: Container) -> Path:
    return _sibling(ct.private, ".convert.json")


def _twin(ct: Container, layout: str, private_suffix: str,
          overrides: dict[str, str | None]) -> Container:
    """A copy of ``ct`` whose area is the sibling ``VE_PRIVATE<suffix>`` in ``layout``
    (its config is never saved over the CT's: it has a path of its own)."""
    config = ConfigFile(_sibling(ct.private, ".convert.conf"), ct.config.text().splitlines())
    config.update({"VE_LAYOUT": layout,
                   "VE_PRIVATE": ct.area_text("VE_PRIVATE") + private_suffix,
                   "VE_ROOT": ct.area_text("VE_ROOT") + ".convert", **overrides})
    return Container(ct.ctid, ct.paths, ct.global_config, config)


def convert(engine: Engine, ct: Container, layout: str, overrides: dict[str, str | None]) -> None:
    """Convert stopped ``ct`` to ``layout``; ``overrides`` are config keys for the new area
    (``DISKSPACE``, ``DISKINODES``) written to the config with it."""
    ct.require_exists()
    with engine.lock(ct, "convert"):
        recover(engine, ct)
        state = engine.state(ct)
        if state is not None and state.is_running:
            raise AlreadyRunning(f"CT {ct.ctid} is running; convert needs it stopped: "
                                 f"'vzctl stop {ct.ctid}' first")
        if is_mounted(ct):
            raise AlreadyMounted(f"CT {ct.ctid} is mounted; 'vzctl umount {ct.ctid}' first")
        if layout == ct.layout:
            raise InvalidValue(f"CT {ct.ctid} already has layout {layout}; nothing to convert")
        if layout == "btrfs" and "BTRFS_POOL" not in overrides and ct.get("BTRFS_POOL"):
            overrides = {**overrides, "BTRFS_POOL": ct.get("BTRFS_POOL") or ""}
        journal: dict[str, object] = {"from": ct.layout, "to": layout}
        if ct.layout == OVERLAY:  # the new area names no shared tree; the old one's is released
            overrides = {**overrides, LOWER_KEY: None}
            journal["lower"] = ct.get(LOWER_KEY)
        new = _twin(ct, layout, ".convert", overrides)
        provider = layout_provider(engine, new)
        _validate(engine, new, overrides)
        if layout != OVERLAY:  # an upper layer holds only the changes: a copy that does not
            _check_fits(engine, ct, new)  # fit fails (ENOSPC) and is undone
        _write_journal(ct, {**journal, "overrides": overrides})
        checkpoint("convert:journaled")
        try:
            _make(engine, new, provider)
            if layout == OVERLAY:  # the tree the template plugin attached (named in new's config)
                overrides = {**overrides, LOWER_KEY: new.config.get(LOWER_KEY)}
                _write_journal(ct, {**journal, "overrides": overrides})
            checkpoint("convert:made")
            try:
                mount_ct(engine, ct)
                try:
                    _fill(engine, ct, new)
                finally:
                    umount_ct(engine, ct)
            finally:
                _umount_twin(engine, new)
        except (VzError, OSError) as exc:
            _undo(engine, ct)  # a failed copy or check: back as it was, the error said
            code = exc.exit_code if isinstance(exc, VzError) else CONVERT_ERROR
            raise VzError(f"CT {ct.ctid}: convert to {layout}: {describe(exc)}; nothing was "
                          "changed", exit_code=code) from exc
        checkpoint("convert:verified")
        _swap(engine, ct, layout, overrides)
    engine.say(f"CT {ct.ctid} was converted to layout {layout}")


OVERLAY = "overlay"
LOWER_KEY = "OVERLAY_LOWER"


def _fill(engine: Engine, ct: Container, new: Container) -> None:
    """Copy the mounted CT's files into the new area and verify the result: for an overlay
    the upper layer gets the differences and the mounted merged view is verified."""
    if new.layout == OVERLAY:
        from vzcore_disk import area, overlay, overlay_diff

        area.mount(new)
        overlay_diff.Differ(ct.root, overlay.lower_of(new), overlay.upper_mount(new) / "root",
                            _shift(ct), skip=_own_lost_found(ct)).run()
        checkpoint("convert:copied")
        overlay.mount(new)  # the upper image again, the (idmapped) lower, the overlay
        _verify(ct.root, new.root)
        return
    target = new.private if new.layout == "simfs" else new.root
    _copy(ct.root, target)
    if new.layout != "simfs":
        from vzcore_disk import image

        image.own_unshifted(target, ct.root_owner)
    checkpoint("convert:copied")
    _verify(ct.root, target)


def _own_lost_found(ct: Container) -> tuple[str, ...]:
    """An image's ``lost+found`` is its file system's, not the CT's (the upper has its own)."""
    return ("lost+found",) if ct.layout == "image" else ()


def _shift(ct: Container) -> Shift:
    """The template's owners as the CT's tree has them on the host (its ID shift)."""
    idmap = ct.idmap
    if idmap is None:
        return lambda uid, gid: (uid, gid)

    def shift(uid: int, gid: int) -> tuple[int, int]:
        try:
            return idmap.host_uid(uid), idmap.host_gid(gid)
        except ValueError:  # outside the CT's range: matches nothing of the CT's
            return -1, -1
    return shift


def _validate(engine: Engine, new: Container, overrides: dict[str, str | None]) -> None:
    """What a create in the new layout would refuse (its size, its pool; for an overlay
    the kernel's support and the CT's template, which the template plugin checks)."""
    from vzcore.changes import Change, ChangeSet
    from vzcore_disk import checks

    changes = ChangeSet({k: Change(k, None, v) for k, v in overrides.items() if v is not None})
    checks.validate(new, changes, "create")
    if new.layout == OVERLAY:
        engine.plugins.run_each("vz_validate", ct=new, changes=changes, verb="create",
                                only=_tree_owner(engine, new).__eq__)


def _tree_owner(engine: Engine, ct: Container) -> str:
    """The plugin that fills CTs' trees from templates and keeps the shared trees an
    overlay's lower layer is (``OVERLAY_LOWER`` is the contract): the ``simfs`` provider,
    the template plugin."""
    return layout_provider(engine, ct, "simfs")


def _check_fits(engine: Engine, ct: Container, new: Container) -> None:
    from vzcore_disk import limits, report

    space, inodes = report.rows(ct)
    wanted = limits.of(new)
    if space.usage is not None and space.usage > wanted.space_hard * 0.95:
        raise InvalidValue(f"CT {ct.ctid}: it uses {space.usage}K, more than the new layout's "
                           f"--diskspace {wanted.space_hard}K leaves room for; give more")
    if inodes.usage is not None and inodes.usage > wanted.inodes_hard * 0.95:
        raise InvalidValue(f"CT {ct.ctid}: it uses {inodes.usage} inodes, more than the new "
                           f"--diskinodes {wanted.inodes_hard} leaves room for; give more")


def _write_journal(ct: Container, data: dict[str, object]) -> None:
    path = journal_of(ct)
    temp = _sibling(path, ".tmp")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)


def _make(engine: Engine, new: Container, provider: str) -> None:
    if new.layout == "simfs":  # the template plugin fills, never makes, other areas
        new.private.mkdir(mode=0o755)
        areas.write_marker(new.private, new.ctid)
        return
    engine.plugins.run_each("vz_layout_create", ct=new, only=provider.__eq__)
    if new.layout == OVERLAY:  # the template plugin attaches the template's shared tree
        engine.plugins.run_each("vz_create", ct=new, only=_tree_owner(engine, new).__eq__)


def _umount_twin(engine: Engine, new: Container) -> None:
    if new.layout != "simfs":
        engine.plugins.run_each("vz_umount", ct=new, only=layout_provider(engine, new).__eq__)
    try:
        new.root.rmdir()
    except OSError:
        pass


def _copy(source: Path, target: Path) -> None:
    done = subprocess.run(["cp", "-a", "--one-file-system", f"{source}/.", f"{target}/"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise VzError(f"cannot copy the CT's files: {done.stderr.strip()}", exit_code=CONVERT_ERROR)


def _entries(top: Path) -> dict[str, os.stat_result]:
    """Everything below ``top`` on its file system.  Directories on another device (a
    btrfs CT's own subvolumes) are left out with what is below them; other files are kept
    whatever their device, as overlayfs may report a lower or upper file's own."""
    found = {}
    device = os.lstat(top).st_dev
    for directory, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, top)] = os.lstat(path)
        kept = []
        for name in dirs:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_dev == device:  # (a link to a directory)
                found[os.path.relpath(path, top)] = st
                kept.append(name)
        dirs[:] = kept
    found["."] = os.lstat(top)
    return found


def _verify(source: Path, target: Path) -> None:
    """Every file of ``source`` is in ``target`` the same: type, mode, owner, content,
    link target, device number, extended attributes (``lost+found`` of an image excepted:
    each ext4 file system has its own); ``target`` has nothing more."""
    old, new = _entries(source), _entries(target)
    for name, a in old.items():
        if name.split("/")[0] == "lost+found":
            continue
        b = new.get(name)
        if b is None:
            raise VzError(f"verification failed: {name} was not copied", exit_code=CONVERT_ERROR)
        same = (stat.S_IFMT(a.st_mode), a.st_mode & 0o7777, a.st_uid, a.st_gid) == \
               (stat.S_IFMT(b.st_mode), b.st_mode & 0o7777, b.st_uid, b.st_gid)
        if same and stat.S_ISREG(a.st_mode):
            same = a.st_size == b.st_size and \
                digest(os.path.join(source, name)) == digest(os.path.join(target, name))
        elif same and stat.S_ISLNK(a.st_mode):
            same = os.readlink(os.path.join(source, name)) == os.readlink(os.path.join(target, name))
        elif same and (stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode)):
            same = a.st_rdev == b.st_rdev
        if same:
            same = xattrs(os.path.join(source, name)) == xattrs(os.path.join(target, name))
        if not same:
            raise VzError(f"verification failed: {name} differs after the copy",
                          exit_code=CONVERT_ERROR)
    extra = sorted(n for n in new if n not in old and n.split("/")[0] != "lost+found")
    if extra:  # e.g. a template file an overlay's upper layer failed to hide
        raise VzError(f"verification failed: {extra[0]} is in the copy, not in the CT",
                      exit_code=CONVERT_ERROR)


def _swap(engine: Engine, ct: Container, layout: str,
          overrides: dict[str, str | None]) -> None:
    """Put the verified new area in place, name its layout in the config, remove the old."""
    old_private = _sibling(ct.private, ".old")
    os.rename(ct.private, old_private)
    checkpoint("convert:old-moved")
    os.rename(_sibling(ct.private, ".convert"), ct.private)
    checkpoint("convert:new-moved")
    _finish(engine, ct)


def _finish(engine: Engine, ct: Container) -> None:
    """Roll a swapped conversion forward: config, then the old area, then the journal."""
    data = json.loads(journal_of(ct).read_text())
    ct.config.update({"VE_LAYOUT": data["to"], **data["overrides"]})
    ct.config.save()
    checkpoint("convert:config-saved")
    old = _twin(ct, data["from"], ".old", {LOWER_KEY: data.get("lower")})
    if old.private.exists():
        engine.plugins.run_each("vz_destroy", ct=old, only=layout_provider(engine, old).__eq__)
    checkpoint("convert:old-removed")
    if data["from"] == OVERLAY and data.get("lower"):  # release the shared tree it named
        engine.plugins.run_each("vz_destroy", ct=old, only=_tree_owner(engine, old).__eq__)
    _sibling(ct.private, ".convert.conf").unlink(missing_ok=True)
    journal_of(ct).unlink(missing_ok=True)


def recover(engine: Engine, ct: Container) -> bool:
    """Finish or undo a conversion a killed vzctl left (from its journal); ``True`` if one
    was found."""
    path = journal_of(ct)
    if not path.exists():
        return False
    data = json.loads(path.read_text())
    new_private = _sibling(ct.private, ".convert")
    old_private = _sibling(ct.private, ".old")
    if ct.private.exists() and old_private.exists() and not new_private.exists():
        _finish(engine, ct)  # swapped: the new area was verified; go forward
        engine.warn(f"CT {ct.ctid}: finished the conversion to {data['to']} a killed vzctl left")
        return True
    _undo(engine, ct)
    engine.warn(f"CT {ct.ctid}: undid the conversion to {data['to']} a killed vzctl left")
    return True


def _undo(engine: Engine, ct: Container) -> None:
    """Put back the old area, remove the new one and the journal (not yet swapped)."""
    data = json.loads(journal_of(ct).read_text())
    old_private = _sibling(ct.private, ".old")
    if not ct.private.exists() and old_private.exists():
        os.rename(old_private, ct.private)
    if is_mounted(ct):
        umount_ct(engine, ct)
    new = _twin(ct, data["to"], ".convert", data["overrides"])
    _umount_twin(engine, new)
    if new.private.exists() or data["to"] == "btrfs":
        # an overlay's tree, if attached, is the template's current one: kept as its cache
        engine.plugins.run_each("vz_destroy", ct=new, only=layout_provider(engine, new).__eq__)
    _sibling(ct.private, ".convert.conf").unlink(missing_ok=True)
    journal_of(ct).unlink()



def discard(ct: Container) -> None:
    """Remove what a killed convert left beside a CT being destroyed: the new area (made by
    this plugin's layouts or a simfs directory), the old one, the journal."""
    from vzcore.linux import safefs
    from vzcore_disk import layouts

    path = journal_of(ct)
    if not path.exists():
        return
    data = json.loads(path.read_text())
    for suffix, layout, overrides in ((".convert", data["to"], data["overrides"]),
                                      (".old", data["from"], {})):
        twin = _twin(ct, layout, suffix, overrides)
        module = layouts.of(twin)
        if module is not None:
            module.umount(twin)
            module.destroy(twin)
        elif twin.private.exists():
            marker = areas.read_marker(twin.private)
            if marker is not None and marker != str(ct.ctid):
                continue  # not this CT's: left in place
            safefs.remove_tree(twin.private)
    try:
        _sibling(ct.root, ".convert").rmdir()
    except OSError:
        pass
    _sibling(ct.private, ".convert.conf").unlink(missing_ok=True)
    path.unlink()
