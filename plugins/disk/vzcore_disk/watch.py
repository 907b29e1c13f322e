"""The grace watcher: the soft limits acted on in time, with no one running ``vzctl``.

A CT whose soft limit is below its hard one (``DISKSPACE`` or ``DISKINODES`` ``soft:hard``)
needs someone to notice that its use went above the soft limit (the grace starts) and
that the grace ran out (the layout's :func:`enforce` then lowers the kernel's limit to the
soft one).  vzctl does that whenever it touches the CT's disk; between two commands the
installation's *grace watcher* does: one host daemon (:mod:`vzcore_disk.watchd`, started
with :class:`vzcore.linux.daemon.Daemon`) that looks at every watched CT each
``QUOTA_CHECK_INTERVAL`` seconds (vz.conf, default :data:`DEFAULT_INTERVAL`) and wakes
at the second a grace ends.

A mount of such a CT (start, ``vzctl mount``) adds the CT to the watch list (a file
``CTID`` in the daemon's ``ctids/``) and starts the daemon if it does not run; its
unmount removes it, and the last one stops the daemon.  A CT that is not mounted needs no
watch: nothing writes to it, and its next mount looks at its grace first.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.linux.daemon import DAEMON_ENV, Daemon

if TYPE_CHECKING:
    from vzcore.conffile import ConfigFile
    from vzcore.container import Container
    from vzcore_disk.limits import Limits

NAME = "quota"
DEFAULT_INTERVAL = 60
"""Seconds between two looks at a watched CT's use (``QUOTA_CHECK_INTERVAL``)."""


def directory(ct: Container) -> Path:
    return ct.paths.run_dir / "quota-watch"


def daemon(ct: Container) -> Daemon:
    from vzcore.ctgroups import daemon_groups

    return Daemon.named(directory(ct), NAME, cgroups=daemon_groups(ct, NAME))


@contextmanager
def guard(ct: Container) -> Iterator[None]:
    """Hold the CT's *limits lock* while its limits or its mount change (mount, umount,
    set, ``vzctl quota``, the watcher's look).  Not the CT's own lock: a verb finding that
    one held fails ("locked by another vzctl"), and the watcher's short looks must never
    make an admin's command fail; this one is waited for (a look takes milliseconds)."""
    locks = directory(ct) / "locks"
    locks.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(locks / str(ct.ctid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def interval(global_config: ConfigFile) -> int:
    """``QUOTA_CHECK_INTERVAL`` from vz.conf (seconds, at least 1)."""
    text = global_config.get("QUOTA_CHECK_INTERVAL") or ""
    return max(1, int(text)) if text.isdigit() else DEFAULT_INTERVAL


def needs_watch(ct: Container, wanted: Limits | None = None) -> bool:
    """Whether ``ct`` has a soft limit below its hard one on a layout that limits it (a
    simfs tree only when it carries its project); ``wanted``: limits not saved yet."""
    from vzcore_disk import layouts, limits

    layout = layouts.limiter(ct)
    if layout is None:
        return False
    if ct.layout == "simfs":
        from vzcore_disk import simfs_area

        if not simfs_area.limited(ct):  # no project quota: nothing to enforce
            return False
    wanted = wanted or limits.of(ct)
    return (wanted.space_set and wanted.space_soft < wanted.space_hard) or \
        (wanted.inodes_set and wanted.inodes_soft < wanted.inodes_hard)


def watch(ct: Container) -> None:
    """Put ``ct`` on the watch list and make sure the daemon runs (after its mount)."""
    helper = daemon(ct)
    with helper.locked():
        listed = helper.directory / "ctids"
        listed.mkdir(mode=0o700, exist_ok=True)
        (listed / str(ct.ctid)).touch()
        if helper.running() is None:
            env = {**DAEMON_ENV, "VZ_ROOT": str(ct.paths.prefix)}
            helper.spawn([sys.executable, "-m", "vzcore_disk.watchd", str(helper.directory)],
                         env=env)


def unwatch(ct: Container) -> None:
    """Take ``ct`` off the watch list (after its unmount); stop the daemon with the last."""
    helper = daemon(ct)
    if not helper.directory.is_dir():
        return
    with helper.locked():
        listed = helper.directory / "ctids"
        (listed / str(ct.ctid)).unlink(missing_ok=True)
        if listed.is_dir() and any(listed.iterdir()):
            return
        process = helper.running()
        if process is not None:
            helper.stop(process)
        helper.forget()
    helper.remove_cgroups()
