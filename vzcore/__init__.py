"""vzcore: OpenVZ-style containers on an upstream Linux kernel.

The public surface for plugin authors is small and cheap to import:

* :data:`hookimpl` marks a function as an implementation of a ``vz_*`` hook;
* :mod:`vzcore.hookspecs` documents every hook;
* :mod:`vzcore.params` declares parameters, :mod:`vzcore.plugin` declares plugins;
* :mod:`vzcore.linux` wraps the kernel interfaces plugins share.

``import vzcore`` imports nothing heavy; ``hookimpl`` pulls in pluggy on first use so that
``vzctl --version`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

PROJECT = "vzcore"
"""The pluggy project name and the entry-point group plugins register under."""

ENTRY_POINT_GROUP = "vzcore.plugins"


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        from vzcore.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'vzcore' has no attribute {name!r}")
