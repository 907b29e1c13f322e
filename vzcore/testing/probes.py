"""Kernel and host features, probed (never assumed), for skip reasons and the test matrix."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from functools import cache

from vzcore.linux import cgroups


@cache
def is_root() -> bool:
    return os.geteuid() == 0


@cache
def in_private_netns() -> bool:
    """True when this process runs in a network namespace other than the host's (PID 1's).

    Where PID 1's namespace cannot be read (some sandboxes deny it even to root), an
    ancestor in another network namespace (the shell that ran ``unshare --net``) says so.
    """
    own = os.readlink("/proc/self/ns/net")
    try:
        return own != os.readlink("/proc/1/ns/net")
    except OSError:
        pass
    pid = os.getppid()
    while pid > 1:
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != own:
                return True
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


@cache
def cgroup_mode() -> str:
    return cgroups.mode()


@cache
def static_busybox() -> bool:
    from vzcore_template.busybox import find_static_busybox

    try:
        find_static_busybox()
        return True
    except Exception:
        return False


@cache
def openat2() -> bool:
    import ctypes

    from vzcore.linux import libc

    fd = libc.syscall("openat2", ctypes.c_int(-100), b"/", None, ctypes.c_size_t(0))
    return not (fd == -1 and ctypes.get_errno() == 38)  # ENOSYS


@cache
def user_namespaces() -> bool:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read()) > 0
    except OSError:
        return False


def tool(name: str) -> bool:
    return shutil.which(name) is not None


FEATURES: dict[str, tuple[Callable[[], bool], str]] = {
    "root": (is_root, "needs root"),
    "netns": (in_private_netns, "needs to run in a network namespace of its own "
                                "(run pytest under 'unshare --net')"),
    "cgroup1": (lambda: cgroup_mode() in ("v1", "hybrid"), "needs cgroup v1 hierarchies"),
    "cgroup2": (lambda: cgroup_mode() == "v2", "needs a cgroup v2-only host"),
    "busybox": (static_busybox, "needs a static busybox (apt-get install busybox-static)"),
    "openat2": (openat2, "needs the openat2 system call (Linux 5.6+)"),
    "userns": (user_namespaces, "needs user namespaces (user.max_user_namespaces > 0)"),
}
"""Feature name -> (probe, what is missing); the markers of :mod:`.pytest_plugin` use it."""
