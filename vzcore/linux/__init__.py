"""Thin, typed wrappers of the kernel interfaces plugins share; no policy lives here.

Each module wraps one interface: :mod:`.libc` (system calls through ctypes),
:mod:`.namespaces`, :mod:`.mounts`, :mod:`.procfs` (processes, pidfds),
:mod:`.caps` (capabilities), :mod:`.cgroups` (v1 and v2), :mod:`.safefs` (file access
inside a CT's tree that never follows a link out of it).  Failures raise
:class:`vzcore.errors.KernelError` naming the operation, the target and the errno.
"""
