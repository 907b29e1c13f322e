"""What a CT sees of the host's CPUs: ``/proc/cpuinfo`` and ``/sys/devices/system/cpu/online``.

The kernel shows every online CPU in both, whatever the CT's cpuset.  As lxcfs does, the
CT gets its own copies bind-mounted (read-only) over them, listing only the CPUs of its
cpuset.  The copies are host files in ``/run/vz/cpu/CTID/``: vzctl rewrites them in place
when ``--cpus`` or ``--cpumask`` change on a running CT, and the bind mounts, which pin
the files, show the new text at once.  ``nproc`` and ``sched_getaffinity`` follow the
cpuset itself.  ``/proc/stat`` and the ``/sys/devices/system/cpu/cpuN`` directories stay
the host's: they change every tick and a static copy would lie.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from vzcore.errors import VzError
from vzcore.linux import mounts, safefs
from vzcore.paths import Paths
from vzcore_cpu import mapping

FILES = {"cpuinfo": "proc/cpuinfo", "online": "sys/devices/system/cpu/online"}
"""View file -> where it is mounted inside the CT root."""


def directory(paths: Paths, ctid: int) -> Path:
    """Where the CT's view files live on the host."""
    return paths.run_dir / "cpu" / str(ctid)


def write(where: Path, cpus: Iterable[int]) -> None:
    """Create or rewrite the view files for ``cpus``, in place (the CT's mounts pin them)."""
    wanted = frozenset(cpus)
    with open("/proc/cpuinfo") as f:
        texts = {"cpuinfo": mapping.filter_cpuinfo(f.read(), wanted),
                 "online": mapping.format_cpulist(wanted) + "\n"}
    where.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        _rewrite(where / name, text.encode())


def _rewrite(path: Path, data: bytes) -> None:
    # Overwrite, then cut: a reader sees old or new bytes but never an empty file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def mount(root: str, where: Path) -> None:
    """In the CT's new mount namespace: bind the view files over their places in ``root``."""
    flags = mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC
    root_fd = safefs.open_root(root)
    try:
        for name, target in FILES.items():
            source = where / name
            if not source.is_file():
                raise VzError(f"the CPU view file {source} is missing")
            safefs.mount_at(root_fd, target, str(source), None, mounts.MS_BIND, kind="file")
            safefs.remount_at(root_fd, target, flags)
    finally:
        os.close(root_fd)


def remove(where: Path) -> None:
    """Remove the view files (idempotent)."""
    for name in FILES:
        try:
            (where / name).unlink()
        except FileNotFoundError:
            pass
    try:
        where.rmdir()
    except FileNotFoundError:
        pass
