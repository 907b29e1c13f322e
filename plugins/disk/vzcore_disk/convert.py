"""``vzctl convert CTID --layout NAME``: move a stopped CT's files into another layout.

The new area is made beside the old one (``VE_PRIVATE.convert``, mounted at
``VE_ROOT.convert`` when its layout mounts), filled with ``cp -a`` from the mounted old
one, and compared with it file by file (type, mode, owner, size, link target, content).
Only then is it swapped in: the old area is renamed ``VE_PRIVATE.old``, the new one takes
its place, the config names the new layout, and the old area is removed by its own
layout's provider.  ``VE_PRIVATE.convert.json`` journals the conversion before anything is
made, so a convert killed at any point is finished or undone by the next ``vzctl
convert`` of the CT (or by ``--recover``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore import areas
from vzcore.conffile import ConfigFile
from vzcore.container import Container
from vzcore.errors import AlreadyMounted, AlreadyRunning, InvalidValue, VzError
from vzcore.faults import checkpoint
from vzcore.lifecycle.mount import is_mounted, layout_provider, mount_ct, umount_ct

if TYPE_CHECKING:
    from vzcore.engine import Engine

CONVERT_ERROR = 3


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def journal_of(ct: Container) -> Path:
    return _sibling(ct.private, ".convert.json")


def _twin(ct: Container, layout: str, private_suffix: str, overrides: dict[str, str]) -> Container:
    """A copy of ``ct`` whose area is the sibling ``VE_PRIVATE<suffix>`` in ``layout``
    (its config is never saved over the CT's: it has a path of its own)."""
    config = ConfigFile(_sibling(ct.private, ".convert.conf"), ct.config.text().splitlines())
    config.update({"VE_LAYOUT": layout,
                   "VE_PRIVATE": ct.area_text("VE_PRIVATE") + private_suffix,
                   "VE_ROOT": ct.area_text("VE_ROOT") + ".convert", **overrides})
    return Container(ct.ctid, ct.paths, ct.global_config, config)


def convert(engine: Engine, ct: Container, layout: str, overrides: dict[str, str]) -> None:
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
        if "overlay" in (layout, ct.layout):
            raise InvalidValue(_NO_OVERLAY.format(ctid=ct.ctid, what="to" if layout == "overlay"
                                                  else "from"))
        if layout == "btrfs" and "BTRFS_POOL" not in overrides and ct.get("BTRFS_POOL"):
            overrides = {**overrides, "BTRFS_POOL": ct.get("BTRFS_POOL") or ""}
        new = _twin(ct, layout, ".convert", overrides)
        provider = layout_provider(engine, new)
        _validate(new, overrides)
        _check_fits(engine, ct, new)
        _write_journal(ct, {"from": ct.layout, "to": layout, "overrides": overrides})
        checkpoint("convert:journaled")
        _make(engine, new, provider)
        try:
            checkpoint("convert:made")
            mount_ct(engine, ct)
            try:
                target = new.private if layout == "simfs" else new.root
                _copy(ct.root, target)
                if layout != "simfs":
                    from vzcore_disk import image

                    image.own_unshifted(target, ct.root_owner)
                checkpoint("convert:copied")
                _verify(ct.root, target)
            finally:
                umount_ct(engine, ct)
        finally:
            _umount_twin(engine, new)
        checkpoint("convert:verified")
        _swap(engine, ct, layout, overrides)
    engine.say(f"CT {ct.ctid} was converted to layout {layout}")


_NO_OVERLAY = (
    "CT {ctid}: convert {what} layout overlay is not supported: an overlay CT's files are its "
    "template's shared tree plus its own changes, and a copy cannot tell which of a CT's files "
    "are changes (to overlay) nor release the shared tree it names (from overlay); create a new "
    "CT with the layout you want and copy the data you need")


def _validate(new: Container, overrides: dict[str, str]) -> None:
    """What a create in the new layout would refuse (its size, its pool)."""
    from vzcore.changes import Change, ChangeSet
    from vzcore_disk import checks

    checks.validate(new, ChangeSet({k: Change(k, None, v) for k, v in overrides.items()}),
                    "create")


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
    found = {}
    device = os.lstat(top).st_dev
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if st.st_dev == device:
                found[os.path.relpath(path, top)] = st
        dirs[:] = [d for d in dirs if os.lstat(os.path.join(directory, d)).st_dev == device]
    found["."] = os.lstat(top)
    return found


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _verify(source: Path, target: Path) -> None:
    """Every file of ``source`` is in ``target`` the same (``lost+found`` of an image
    excepted: each ext4 file system has its own)."""
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
                _digest(os.path.join(source, name)) == _digest(os.path.join(target, name))
        elif same and stat.S_ISLNK(a.st_mode):
            same = os.readlink(os.path.join(source, name)) == os.readlink(os.path.join(target, name))
        elif same and (stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode)):
            same = a.st_rdev == b.st_rdev
        if not same:
            raise VzError(f"verification failed: {name} differs after the copy",
                          exit_code=CONVERT_ERROR)


def _swap(engine: Engine, ct: Container, layout: str, overrides: dict[str, str]) -> None:
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
    old = _twin(ct, data["from"], ".old", {})
    if old.private.exists():
        engine.plugins.run_each("vz_destroy", ct=old, only=layout_provider(engine, old).__eq__)
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
    if not ct.private.exists() and old_private.exists():
        os.rename(old_private, ct.private)
    if is_mounted(ct):
        umount_ct(engine, ct)
    new = _twin(ct, data["to"], ".convert", data["overrides"])
    _umount_twin(engine, new)
    if new.private.exists() or data["to"] == "btrfs":
        engine.plugins.run_each("vz_destroy", ct=new, only=layout_provider(engine, new).__eq__)
    _sibling(ct.private, ".convert.conf").unlink(missing_ok=True)
    path.unlink()
    engine.warn(f"CT {ct.ctid}: undid the conversion to {data['to']} a killed vzctl left")
    return True



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
