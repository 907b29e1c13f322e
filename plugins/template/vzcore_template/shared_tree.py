"""Shared template trees: a template unpacked once, for every ``overlay`` CT made from it.

``$TEMPLATE/shared/NAME@VERSION/`` is the template's tree as its tarball has it (owners
``0..65535``, not shifted: an unprivileged CT sees it through an idmapped mount), the
read-only lower layer of each overlay CT's root.  ``VERSION`` names the tarball's size and
modification time (for ``busybox``, the static busybox binary's), so a rebuilt template
gets a tree of its own and the CTs made before keep theirs: an overlay's lower layer must
never change under it.  A CT's config names its tree (``OVERLAY_LOWER``).

``$TEMPLATE/shared`` is ``0700``: the trees hold set-id programs owned by the host's root.
A tree is unpacked into ``.unpack-NAME@VERSION`` and renamed into place whole, under
``$TEMPLATE/shared/.lock``, which create, destroy and ``template remove`` hold while they
look at the trees: a killed unpack leaves a directory the next one removes.

Lifetime: the tree of the template's current tarball stays (it is the unpacked cache:
the next create needs no unpack); a tree of an older tarball is removed with the last CT
using it; ``vzctl template remove NAME`` refuses while a CT uses a tree of NAME (naming
the CTs) and removes the trees with the tarball otherwise.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.conffile import ConfigFile
from vzcore.faults import checkpoint
from vzcore.linux import safefs
from vzcore.paths import DEFAULTS, Paths

if TYPE_CHECKING:
    from vzcore.container import Container

KEY = "OVERLAY_LOWER"
"""The config key naming a CT's tree (as an absolute path inside the installation)."""

UNPACKING = ".unpack-"


def trees_dir(template_area: str) -> str:
    """``$TEMPLATE/shared`` as written in configs (``template_area``: ``TEMPLATE``)."""
    return f"{template_area.rstrip('/')}/shared"


def version_of(source: Path) -> str:
    """The version part of a tree's name: what changes when ``source`` is rebuilt."""
    st = source.stat()
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"


def tree_name(name: str, source: Path) -> str:
    return f"{name}@{version_of(source)}"


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` (made ``0700`` with the directory if need be)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # also when an older vzcore or a human made it
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_interrupted(directory: Path) -> None:
    """Remove what a killed unpack left (call with the lock held)."""
    for leftover in directory.glob(f"{UNPACKING}*"):
        safefs.remove_tree(leftover)


def users(paths: Paths, tree: str, *, but: int | None = None) -> list[int]:
    """The CTs whose config names ``tree`` (a path as configs write it), except ``but``."""
    found = []
    for conf in sorted(paths.conf_dir.glob("*.conf")) if paths.conf_dir.is_dir() else []:
        if not conf.stem.isdigit() or int(conf.stem) == but:
            continue
        try:
            if ConfigFile.load(conf).get(KEY) == tree:
                found.append(int(conf.stem))
        except Exception:  # an unreadable config: not this command's to report
            continue
    return sorted(found)


def users_of_name(paths: Paths, template_area: str, name: str) -> list[int]:
    """The CTs using any tree of template ``name``."""
    prefix = f"{trees_dir(template_area)}/{name}@"
    found = []
    for conf in sorted(paths.conf_dir.glob("*.conf")) if paths.conf_dir.is_dir() else []:
        if not conf.stem.isdigit():
            continue
        try:
            if (ConfigFile.load(conf).get(KEY) or "").startswith(prefix):
                found.append(int(conf.stem))
        except Exception:
            continue
    return sorted(found)


def trees_of_name(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f"{name}@*"))


def _template_area(ct: Container) -> str:
    return ct.get("TEMPLATE") or DEFAULTS["TEMPLATE"]


def attach(ct: Container, source: Path) -> Path:
    """Make sure the tree of ``ct``'s template exists (unpacking it the first time) and
    name it in the CT's config (saved); returns its host path."""
    name = ct.get("OSTEMPLATE") or "busybox"
    written = trees_dir(_template_area(ct))
    directory = ct.paths.host(written)
    tree_id = tree_name(name, source)
    tree = directory / tree_id
    with locked(directory):
        remove_interrupted(directory)
        if not tree.is_dir():
            _unpack(ct, name, source, directory / f"{UNPACKING}{tree_id}")
            checkpoint("create:tree-unpacked")
            os.rename(directory / f"{UNPACKING}{tree_id}", tree)
        # named under the lock: a destroy of the tree's last other user waits for this
        ct.config.set(KEY, f"{written}/{tree_id}")
        ct.config.save()
    return tree


def _unpack(ct: Container, name: str, source: Path, target: Path) -> None:
    target.mkdir(mode=0o755)
    if name == "busybox":
        from vzcore_template import busybox

        busybox.populate(target)
        return
    from vzcore_template import tarball

    skipped = tarball.unpack(source, target, None, None)  # unshifted: idmapped at mount
    if skipped:
        sys.stderr.write(f"Warning: template {name}: left out {len(skipped)} device node(s) or "
                         f"socket(s) ({', '.join(skipped[:5])}); /dev is made at start\n")


def release(ct: Container, current: Path | None) -> None:
    """At the destroy of ``ct``: remove its tree if no other CT uses it and it is not the
    tree of the template's current tarball (``current``; ``None``: the template is gone)."""
    written = ct.config.get(KEY)
    if not written:
        return
    tree = ct.paths.host(written)
    directory = tree.parent
    if not directory.is_dir():
        return
    name = tree.name.partition("@")[0]
    with locked(directory):
        if users(ct.paths, written, but=ct.ctid):
            return
        if current is not None and tree.name == tree_name(name, current):
            return  # the current tarball's tree: the next create needs no unpack
        if tree.is_dir():
            safefs.remove_tree(tree)


def remove_trees(paths: Paths, template_area: str, name: str) -> list[Path]:
    """Remove every tree of template ``name`` (``template remove``); refuses, naming the
    CTs, while an overlay CT uses one."""
    from vzcore.errors import InvalidValue

    directory = paths.host(trees_dir(template_area))
    if not directory.is_dir():
        return []
    with locked(directory):
        using = users_of_name(paths, template_area, name)
        if using:
            raise InvalidValue(
                f"template remove: template {name} is in use: overlay CTs "
                f"{', '.join(map(str, using))} share its unpacked tree; destroy them first")
        removed = trees_of_name(directory, name)
        for tree in removed:
            safefs.remove_tree(tree)
        return removed
