"""The dumpable mark that keeps a process's memory, descriptors and binary from others.

A non-dumpable process passes the kernel's ptrace access check (``ptrace``,
``/proc/PID/{exe,mem,environ,fd,map_files,root,cwd}``, ``process_vm_readv``,
``pidfd_getfd``) only for a caller with ``CAP_SYS_PTRACE`` in the user namespace that
owns the process's memory: for vzctl's interpreter, the host's.  Every credential change
(``setns`` into a user namespace, ``setresuid``, ``capset``) resets the mark to
``fs.suid_dumpable``, which may be 1 (dumpable), so callers set it again after each.
"""

from __future__ import annotations

from vzcore.linux import libc

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def forbid() -> None:
    """Make the calling process non-dumpable and check that the kernel holds it so."""
    libc.prctl(PR_SET_DUMPABLE, 0)
    if libc.prctl(PR_GET_DUMPABLE) != 0:
        raise OSError("the process is still dumpable after PR_SET_DUMPABLE 0")


def is_dumpable() -> bool:
    """Whether the calling process is dumpable (any value but 0)."""
    return libc.prctl(PR_GET_DUMPABLE) != 0
