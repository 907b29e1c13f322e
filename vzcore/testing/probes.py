"""Kernel and host features, probed (never assumed), for skip reasons and the test matrix."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

from vzcore.linux import cgroups


@cache
def is_root() -> bool:
    return os.geteuid() == 0


@cache
def in_private_netns() -> bool:
    """True when this process runs in a network namespace made below the host's: some
    ancestor (PID 1 when it is readable) is in another network namespace."""
    return in_private_namespace("net")


def in_private_namespace(kind: str) -> bool:
    mine = os.readlink(f"/proc/self/ns/{kind}")
    pid = os.getppid()
    while pid > 0:
        try:
            if os.readlink(f"/proc/{pid}/ns/{kind}") != mine:
                return True
        except OSError:  # PID 1 may be unreadable in a sandbox; its children are not
            pass
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


@cache
def cgroup_mode() -> str:
    return cgroups.mode()


FEATURE_GROUP = "vzcore.test_features"
"""Entry-point group where plugins declare probes of what their tests need: ``busybox``
(can the template provider make the built-in busybox template on this host?) comes from
the template plugin, so this package imports no plugin."""


def declared_probe(name: str) -> Callable[[], bool] | None:
    """The probe a plugin declares for feature ``name`` (``None``: none does)."""
    from importlib_metadata import entry_points

    for ep in entry_points(group=FEATURE_GROUP, name=name):
        probe: Callable[[], bool] = ep.load()
        return probe
    return None


@cache
def static_busybox() -> bool:
    """Whether the installed template provider can make the ``busybox`` template."""
    probe = declared_probe("busybox")
    return probe is not None and bool(probe())


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


IPROUTE2 = "/bin/ip"
"""iproute2's ip on Debian (a busybox ``ip`` earlier in PATH knows no veth)."""


@cache
def veth_devices() -> bool:
    """Whether the kernel makes veth pairs (built in, or a module it can load); tried in a
    throwaway network namespace, which takes the pair with it."""
    import subprocess

    made = subprocess.run(["unshare", "--net", "--", IPROUTE2, "link", "add", "vzprobe0", "type",
                           "veth", "peer", "name", "vzprobe1"], capture_output=True, check=False)
    return made.returncode == 0


FEATURES: dict[str, tuple[Callable[[], bool], str]] = {
    "root": (is_root, "needs root"),
    "netns": (in_private_netns, "needs to run in a network namespace of its own "
                                "(run pytest under 'unshare --net')"),
    "cgroup1": (lambda: cgroup_mode() in ("v1", "hybrid"), "needs cgroup v1 hierarchies"),
    "cgroup2": (lambda: cgroup_mode() == "v2", "needs a cgroup v2-only host"),
    "busybox": (static_busybox, "needs the busybox template: a template plugin declaring the "
                                 f"'busybox' probe ({FEATURE_GROUP}) and a static busybox "
                                 "(apt-get install busybox-static)"),
    "openat2": (openat2, "needs the openat2 system call (Linux 5.6+)"),
    "userns": (user_namespaces, "needs user namespaces (user.max_user_namespaces > 0)"),
    "sysrq": (lambda: os.path.exists("/proc/sysrq-trigger"),
              "needs a kernel with magic SysRq (/proc/sysrq-trigger, CONFIG_MAGIC_SYSRQ)"),
    "veth": (veth_devices, "needs veth network devices (CONFIG_VETH: built in or the veth module)"),
}
"""Feature name -> (probe, what is missing); the markers of :mod:`.pytest_plugin` use it."""
