"""The default deny list, in the spirit of LXC's: what a CT process may never call.

Each entry says why.  Calls the CT's capabilities already forbid (setting the clock,
``reboot`` of the host) are not repeated here; a CT keeps ``mount``, ``unshare`` and
``ptrace`` because system containers use them (what that means for the privileged
profile is in docs/security.md).
"""

from __future__ import annotations

import errno

DEFAULT: dict[str, tuple[int, str]] = {
    "init_module": (errno.EPERM, "loading kernel modules"),
    "finit_module": (errno.EPERM, "loading kernel modules"),
    "delete_module": (errno.EPERM, "unloading kernel modules"),
    "kexec_load": (errno.EPERM, "replacing the running kernel"),
    "kexec_file_load": (errno.EPERM, "replacing the running kernel"),
    "open_by_handle_at": (errno.EPERM, "opening host files by handle (the 'shocker' escape)"),
    "bpf": (errno.EPERM, "loading BPF programs into the kernel"),
    "perf_event_open": (errno.EPERM, "kernel-wide tracing and side channels"),
    "userfaultfd": (errno.EPERM, "a common tool for kernel exploit timing"),
    "keyctl": (errno.ENOSYS, "the kernel keyring is not namespaced (ENOSYS: programs fall back)"),
    "add_key": (errno.ENOSYS, "the kernel keyring is not namespaced"),
    "request_key": (errno.ENOSYS, "the kernel keyring is not namespaced"),
    "syslog": (errno.EPERM, "reading or clearing the host's kernel log"),
    "acct": (errno.EPERM, "host-wide process accounting"),
    "swapon": (errno.EPERM, "host swap"),
    "swapoff": (errno.EPERM, "host swap"),
    "lookup_dcookie": (errno.EPERM, "kernel profiling interface"),
    "iopl": (errno.EPERM, "raw I/O port access"),
    "ioperm": (errno.EPERM, "raw I/O port access"),
}


def denied() -> dict[str, int]:
    """System call name -> errno of the default profile."""
    return {name: error for name, (error, _why) in DEFAULT.items()}
