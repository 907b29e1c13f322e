"""A dead lxcfs found by vzctl: start a new one and bind it anew into every running CT.

A crashed lxcfs leaves every CT's bound files answering ENOTCONN until the CT restarts,
on LXC and Incus too (Incus offers one lxcfs per instance to contain the damage).  vzctl
checks the daemon whenever it starts a CT with views, shows a CT's status (``vzctl
status``, ``vzlist``) or changes it (``vzctl set``).  Found dead, it is started again and
the running CTs get its files bound over the stale ones, in each mount namespace their
processes use (systemd's services with ``PrivateTmp=`` and the like have their own
copies), so the CTs go on without a restart.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from vzcore.errors import VzError
from vzcore.linux import namespaces
from vzcore.linux.procfs import ProcessId, namespace
from vzcore_lxcfs import daemon
from vzcore_lxcfs.daemon import Place, User

REBINDING = "rebinding"
"""Marker in the daemon's directory while CTs are being bound anew: a vzctl killed in the
middle leaves it, and the next check finishes the work."""


def _namespaces_of(user: User) -> dict[str, int]:
    """One PID per distinct mount namespace among the CT's processes."""
    found: dict[str, int] = {}
    try:
        pids = user.cgroups.pids() if user.cgroups is not None else set()
    except (OSError, VzError):
        pids = set()
    if user.init is not None:
        pids.add(user.init.pid)
    for pid in sorted(pids):
        ns = namespace(pid, "mnt")
        if ns is not None and ns not in found:
            found[ns] = pid
    return found


def rebind(where: Place, process: ProcessId, users: list[User]) -> list[str]:
    """Bind the daemon's files anew into every running user CT; returns the failures."""
    skip = {namespace(os.getpid(), "mnt"), namespace(process.pid, "mnt")}
    failures: list[str] = []
    for user in users:
        if user.init is None or not user.init.is_alive():
            continue  # a start in progress binds from the new daemon itself
        for ns, pid in _namespaces_of(user).items():
            if ns in skip:
                continue  # a process just joining the CT: never touch the host's own

            def work(pid: int = pid, files: tuple[str, ...] = user.files) -> None:
                from vzcore_lxcfs import bind

                bind.rebind_here(process.pid, where.mountpoint, pid, files)

            try:
                namespaces.call_in(os.getpid(), (), work)
            except VzError as exc:
                if ProcessId.of(pid) is not None:  # a process that exited meanwhile is no loss
                    failures.append(f"CT {user.ctid} ({ns}): {exc}")
    return failures


def _marker(where: Place) -> Path:
    return where.directory / REBINDING


def check(where: Place, run_dir: Path, program: str | None) -> ProcessId | None:
    """Make sure the daemon at ``where`` serves and the running CTs of ``run_dir`` see it;
    returns the daemon (``None`` when no CT uses one).  Cheap when all is well: a file read
    and a ``stat``."""
    process = daemon.healthy(where)
    if process is not None and not _marker(where).exists():
        return process
    with daemon.locked(where):
        return _check_locked(where, run_dir, program)


def _check_locked(where: Place, run_dir: Path, program: str | None) -> ProcessId | None:
    users = daemon.users(run_dir)
    process = daemon.healthy(where)
    if process is None:
        daemon.clear(where)
        if not users:
            return None
        if program is None:
            raise VzError("lxcfs died and is no longer installed; CTs show the host's "
                          "/proc files until lxcfs is installed again (Debian package lxcfs)")
        _marker(where).touch()
        process = daemon.start(where, program)
    failures = rebind(where, process, users)
    if failures:
        raise VzError("lxcfs restarted, but its files could not be bound anew into "
                      + "; ".join(failures))
    try:
        _marker(where).unlink()
    except FileNotFoundError:
        pass
    return process


def ensure_for_start(where: Place, run_dir: Path, program: str) -> ProcessId:
    """``vz_pre_start``: the serving daemon, started now or again; the CTs that ran on a
    dead one are bound anew (a failure there is a warning: this CT still starts)."""
    with daemon.locked(where):
        process = daemon.healthy(where)
        if process is not None and not _marker(where).exists():
            return process
        try:
            process = _check_locked(where, run_dir, program)
        except VzError as exc:
            process = daemon.healthy(where)
            if process is None:
                raise
            print(f"warning: {exc}", file=sys.stderr)
        if process is None:  # no user recorded: the caller records before it calls
            process = daemon.start(where, program)
        return process
