"""simfs limits by the host file system's project quota (Incus's ``dir`` driver).

The template plugin makes, mounts and removes a simfs CT's directory; this module only
limits it: the tree ``VE_PRIVATE`` gets the project ID of the CT (:mod:`vzcore_disk.project`)
at create (``vz_quota_init``) or at the first ``vzctl set --diskspace``, and the project's
hard limits are the CT's (past grace, the soft one, as on btrfs).  A simfs CT that was
never given limits stays a plain directory, its use a walk of the tree.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.errors import VzError
from vzcore.linux import mounts
from vzcore.values import LONG_MAX
from vzcore_disk import grace, limits, project, simfs
from vzcore_disk.image import Usage

if TYPE_CHECKING:
    from vzcore.container import Container

LAYOUT = "simfs"


def limited(ct: Container) -> bool:
    """Whether the CT's tree carries its project (its limits are the kernel's)."""
    return ct.private.is_dir() and project.assigned(ct.private, project.project_id(ct.ctid))


def state_path(ct: Container) -> Path:
    """The grace state, beside the directory (which is the CT's own ``/``)."""
    return ct.private.with_name(f"{ct.private.name}.quota.json")


def destroy(ct: Container) -> None:
    """Lift the project's limits (the template plugin removes the tree) and remove the
    grace state."""
    if limited(ct):
        _set(ct, LONG_MAX, LONG_MAX)
    state_path(ct).unlink(missing_ok=True)


def mounted(ct: Container) -> bool:
    return mounts.is_mount_point(ct.root)


def usage(ct: Container) -> Usage:
    """The project's counters (no walk) once the tree carries it, else a walk."""
    if not limited(ct):
        return simfs.usage(ct.private)
    used, bhard, inodes, ihard = project.usage(ct.private, project.project_id(ct.ctid))
    return Usage(used, bhard or LONG_MAX, inodes, ihard or LONG_MAX)


def limit_new(ct: Container) -> None:
    """At create: a CT given limits (or a vz.conf default) gets its project where the host
    file system has project quota; elsewhere it stays unlimited, as before (a limit given
    on the command line was refused by ``vz_validate``)."""
    wanted = limits.of(ct)
    if (wanted.space_set or wanted.inodes_set) and project.missing(ct.private) is None:
        state_path(ct).unlink(missing_ok=True)  # a destroyed namesake's
        start_limiting(ct, wanted)


def start_limiting(ct: Container, wanted: limits.Limits) -> None:
    """Give the tree the CT's project and the project the CT's limits (create, first set);
    the limits go first, so that a tree already over them is refused nothing it has."""
    projid = project.project_id(ct.ctid)
    _set(ct, wanted.space_hard, wanted.inodes_hard)
    try:
        project.assign(ct.private, projid)
    except OSError as exc:
        raise VzError(f"CT {ct.ctid}: cannot give {ct.private} project ID {projid}: "
                      f"{exc.strerror}") from exc


def _set(ct: Container, kblocks: int, inodes: int) -> None:
    try:
        project.set_limits(ct.private, project.project_id(ct.ctid),
                           kblocks if kblocks < LONG_MAX else None,
                           inodes if inodes < LONG_MAX else None)
    except OSError as exc:
        raise VzError(f"CT {ct.ctid}: cannot set the project quota of {ct.private}: "
                      f"{exc.strerror}") from exc


def resize(ct: Container, old: limits.Limits, new: limits.Limits) -> None:
    """New limits: one quotactl on a limited tree; the first limits give the tree its
    project (a walk).  Without project quota nothing is done: ``vz_validate`` refused
    limits given for such a CT, and one from vz.conf binds nothing there."""
    if limited(ct):
        _set(ct, new.space_hard, new.inodes_hard)
    elif (new.space_set or new.inodes_set) and project.missing(ct.private) is None:
        start_limiting(ct, new)


def enforce(ct: Container, wanted: limits.Limits | None = None) -> grace.Grace:
    """Past grace the project's block limit drops to the soft one (EDQUOT), as on btrfs;
    nothing for a tree that does not carry its project."""
    wanted = wanted or limits.of(ct)
    if not limited(ct):
        return grace.Grace()
    used = usage(ct)
    before = grace.load(state_path(ct))
    after = grace.next_state(before, used, wanted, time.time())
    space = wanted.space_soft if after.enforced and wanted.space_set else wanted.space_hard
    if space != used.blocks_total or wanted.inodes_hard != used.inodes_total:
        _set(ct, space, wanted.inodes_hard)
    if after != before:
        grace.save(state_path(ct), after)
    return after
