"""Capabilities: names, the bounding set, and the process's own sets."""

from __future__ import annotations

import ctypes
import functools

from vzcore.linux import libc

NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)
"""Capability names in bit order (``linux/capability.h``), lower case as vzctl spells them."""

NUMBERS = {name: bit for bit, name in enumerate(NAMES)}

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


@functools.cache
def last_cap() -> int:
    """The kernel's highest capability number (read once: ``vzctl runscript`` of a stopped
    CT restricts its shell where no ``/proc`` is mounted)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def in_bounding_set(cap: int) -> bool:
    return bool(libc.prctl(PR_CAPBSET_READ, cap))


def limit_to(keep: frozenset[int]) -> None:
    """Reduce the calling process to the capabilities in ``keep``.

    Drops the rest from the bounding set (so no exec can regain them), clears the ambient
    set, and restricts effective, permitted and inheritable to ``keep``.
    """
    for cap in range(last_cap() + 1):
        if cap not in keep and in_bounding_set(cap):
            libc.prctl(PR_CAPBSET_DROP, cap)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    libc.check(libc.syscall("capget", ctypes.byref(header), ctypes.byref(data)), "capget")
    for word in range(2):
        mask = sum(1 << (cap - 32 * word) for cap in keep if 32 * word <= cap < 32 * (word + 1))
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    libc.check(libc.syscall("capset", ctypes.byref(header), ctypes.byref(data)), "capset")


def set_no_new_privs() -> None:
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1)


def in_effective_set(cap: int) -> bool:
    """Whether the calling thread has capability ``cap`` in effect (``capget``: works
    where no ``/proc`` is mounted, as for ``vzctl runscript`` of a stopped CT)."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    libc.check(libc.syscall("capget", ctypes.byref(header), ctypes.byref(data)), "capget")
    return bool(data[cap // 32].effective & (1 << (cap % 32)))


def set_sets(*, effective: frozenset[int], permitted: frozenset[int],
             inheritable: frozenset[int]) -> None:
    """Set the calling thread's effective, permitted and inheritable sets exactly (an OCI
    process's ``capabilities``); the kernel refuses to add to permitted."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for word in range(2):
        def mask(caps: frozenset[int], word: int = word) -> int:
            return sum(1 << (cap - 32 * word) for cap in caps if 32 * word <= cap < 32 * (word + 1))

        data[word].effective = mask(effective)
        data[word].permitted = mask(permitted)
        data[word].inheritable = mask(inheritable)
    libc.check(libc.syscall("capset", ctypes.byref(header), ctypes.byref(data)), "capset")
