"""Which distribution's actions a CT gets.

The CT's ``OSTEMPLATE`` (``debian-12-x86_64-minimal``) is tried as OpenVZ looks up
``/etc/vz/dists/<name>.conf``: whole, then without its trailing ``-component`` one at a
time (``debian-12-x86_64``, ``debian-12``, ``debian``).  Without a match, the CT's own
``/etc/os-release`` (read through safefs) decides: ``ID``, then each of ``ID_LIKE``
(Ubuntu and Devuan name ``debian``).  Anything else gets the ``default`` actions.
"""

from __future__ import annotations

from types import ModuleType

from vzcore_dists import busybox, common, debian, default
from vzcore_dists.tree import CtTree

MODULES: dict[str, ModuleType] = {m.NAME: m for m in (debian, busybox)}


def candidates(ostemplate: str | None) -> list[str]:
    """``debian-12-x86_64-minimal`` -> itself, ``debian-12-x86_64``, ``debian-12``, ``debian``."""
    parts = (ostemplate or "").strip().split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1) if parts[0]]


def from_template(ostemplate: str | None) -> ModuleType | None:
    for name in candidates(ostemplate):
        if name in MODULES:
            return MODULES[name]
    return None


def from_os_release(tree: CtTree) -> ModuleType | None:
    text = tree.read("etc/os-release") or tree.read("usr/lib/os-release")
    names = [common.read_key(text, "ID") or "", *(common.read_key(text, "ID_LIKE") or "").split()]
    return next((MODULES[n] for n in names if n in MODULES), None)


def dist_for(ostemplate: str | None, tree: CtTree) -> ModuleType:
    """The actions module for a CT with ``ostemplate`` whose files are ``tree``."""
    return from_template(ostemplate) or from_os_release(tree) or default
