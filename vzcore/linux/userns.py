"""User namespaces: writing a process's ID maps, and becoming the namespace's root."""

from __future__ import annotations

import os

from vzcore.errors import KernelError
from vzcore.idmap import IdMap


def write_maps(pid: int, idmap: IdMap) -> None:
    """Write ``/proc/PID/uid_map`` and ``gid_map`` of a process in a new user namespace."""
    for name, text in (("uid_map", idmap.uid_map()), ("gid_map", idmap.gid_map())):
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError as exc:
            raise KernelError(f"write {text.strip()!r} to", path, exc.errno or 0) from exc


def become_root() -> None:
    """In a user namespace with maps written: become its root (IDs 0, no supplementary
    groups of the host's)."""
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
