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
