"""In the CT's first process, before its root is switched: its per-process resource
limits, the limits that live on the CT's own mounts (devpts ``max=``, /dev/shm
``size=``) and the view's placeholder.

This runs as the host's root (a CT with a user namespace enters it later), so hard
limits can be raised as well as lowered, and init passes them on to every process it
starts.  The isolation plugin has just mounted /dev, /dev/pts and /dev/shm (its hooks run
first); these remounts change them before the CT's init can use them, and the root
switch then locks them against the CT's root.  Every path is resolved inside the CT's
root (:mod:`vzcore.linux.safefs`).
"""

from __future__ import annotations

import os

from vzcore.linux import mounts, safefs
from vzcore_beancounters import apply, view
from vzcore_beancounters.limits import Limits
from vzcore_beancounters.plan import plan
from vzcore_beancounters.settings import nr_open


def _remount(root_fd: int, path: str, fstype: str, data_of: str | None, maximum: int | None) -> None:
    with safefs.opened(root_fd, path, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY) as fd:
        target = f"/proc/self/fd/{fd}"
        if maximum is not None:
            where = os.readlink(target)
            options = apply.super_options(mounts.mountinfo(), where, fstype)
            apply.remount(target, apply.devpts_data(options, maximum))
        elif data_of is not None:
            apply.remount(target, data_of)


def setup(root: str, limits: Limits) -> None:
    """Apply numpty and shmpages to the CT's devpts and /dev/shm; leave the view's
    placeholder file when the host can serve views.  (The resource limits are set on the
    process init is forked from, by ``vz_setup_host``.)"""
    settings = plan(limits, 2, nr_open=nr_open())  # the version only matters for cgroups
    root_fd = safefs.open_root(root)
    try:
        if settings.devpts_max is not None:
            _remount(root_fd, "dev/pts", "devpts", None, settings.devpts_max)
        if settings.shm_size is not None:
            _remount(root_fd, "dev/shm", "tmpfs", f"size={settings.shm_size}", None)
        if view.available():
            safefs.write_file(root_fd, view.VIEW_PATH, b"", mode=0o400)
    finally:
        os.close(root_fd)
