"""The layouts this plugin offers, by name: each a module with the same functions
(``make``, ``mount``, ``umount``, ``mounted``, ``destroy``, ``usage``, ``resize``,
``enforce``), so the hooks never branch on the layout themselves."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vzcore.container import Container

NAMES = ("image", "btrfs", "overlay")


def of(ct: Container) -> ModuleType | None:
    """The module of the CT's layout, ``None`` for a layout another plugin offers."""
    if ct.layout == "image":
        from vzcore_disk import area

        return area
    if ct.layout == "btrfs":
        from vzcore_disk import btrfs_area

        return btrfs_area
    if ct.layout == "overlay":
        from vzcore_disk import overlay

        return overlay
    return None


def make_private(ct: Container) -> None:
    """Make the CT's new private area (mode 0700), marked as the CT's (:mod:`vzcore.areas`)."""
    from vzcore import areas

    areas.create(ct.private, ct.ctid, 0o700)


def limiter(ct: Container) -> ModuleType | None:
    """The module that measures and limits the CT's disk: its layout's (:func:`of`), or
    :mod:`vzcore_disk.simfs_area` for a simfs directory (project quota; the template plugin
    makes and mounts the directory itself).  It has ``usage``, ``resize``, ``enforce``,
    ``mounted``, ``destroy`` and ``state_path``."""
    module = of(ct)
    if module is None and ct.layout == "simfs":
        from vzcore_disk import simfs_area

        return simfs_area
    return module
