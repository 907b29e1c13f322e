"""``vzctl runscript`` of a stopped CT: the script runs in the CT's root alone.

OpenVZ's semantics: the CT's root is mounted (unless it already was), the script runs in
it with nothing but the root file system (no ``/proc``, no ``/dev`` mounts, no init, no
network but an unconfigured loopback), then the root is unmounted again (a CT that was
mounted before stays mounted).  The CT's isolation still holds: vzctl forks a child
that, as the host's root, makes a mount namespace of its own and pivots into the CT's
root, detaching the host's (so no path leads back to it, unlike a ``chroot``); then it
makes new user (the CT's ID map, written by vzctl), UTS, IPC, network and PID
namespaces, becomes the CT's root and forks the shell as PID 1 of the new PID namespace,
restricted by every plugin's ``vz_enter`` (capabilities, seccomp) as ``vzctl exec``
restricts a command.  When the shell ends, its PID namespace ends with it: nothing the
script started outlives it.

The CT's lock is held throughout, so no start, mount or umount runs meanwhile.  A
``vzctl`` killed while the script runs leaves the root mounted (as ``vzctl mount``
would); ``vzctl umount`` or a start takes it from there.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import AlreadyRunning, VzError, describe
from vzcore.lifecycle import privileged
from vzcore.lifecycle.areas import check_areas
from vzcore.lifecycle.mount import check_layout, is_mounted, mount_ct, umount_ct
from vzcore.linux import dumpable, execstrings, libc, mounts, namespaces
from vzcore.runtime import Run, State

NAMESPACES = ("uts", "ipc", "net", "pid")
"""The namespaces the script gets besides the mount namespace (and the user namespace of
a CT with an ID map)."""
PR_SET_PDEATHSIG = 1
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "container": "vzcore",
}


def run_stopped(engine: Engine, ct: Container, argv: Sequence[str]) -> int:
    """Run ``argv`` (with vzctl's stdin, e.g. the script) in the stopped ``ct``'s root as
    the module says; return its exit status.  A CT that runs (or started meanwhile) is
    refused with :class:`AlreadyRunning`: the caller joins a running CT instead."""
    ct.require_exists()
    check_layout(engine, ct)
    check_areas(engine, ct)
    privileged.check(engine, ct, "runscript", privileged=ct.idmap is None)
    engine.plugins.import_child_modules()  # vz_enter's modules: the host's files are gone
    with engine.lock(ct, "runscript"):
        state = engine.state(ct)
        if state is not None:
            if state.is_running:
                raise AlreadyRunning(f"CT {ct.ctid} started meanwhile; run the script again")
            raise VzError(f"CT {ct.ctid} has what its last run left (state file "
                          f"{state.path}); clean it up with 'vzctl stop {ct.ctid}', then run "
                          "the script again")
        mounted_here = not is_mounted(ct)
        if mounted_here:
            mount_ct(engine, ct)  # with the premount/mount action scripts, as OpenVZ
        try:
            return _run(engine, ct, argv)
        finally:
            if mounted_here:
                umount_ct(engine, ct)


def _run(engine: Engine, ct: Container, argv: Sequence[str]) -> int:
    from vzcore.lifecycle.enter import _copy_stdio

    stdio = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)  # child -> vzctl: namespaces made
    go_r, go_w = os.pipe2(os.O_CLOEXEC)  # vzctl -> child: ID maps written
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        _child(engine, ct, argv, (stdio[0][0], stdio[1][1], stdio[2][1]), ready_w, go_r)
    for fd in (stdio[0][0], stdio[1][1], stdio[2][1], ready_w, go_r):
        os.close(fd)
    try:
        if os.read(ready_r, 1) == b"1" and ct.idmap is not None:
            from vzcore.linux import userns

            userns.write_maps(pid, ct.idmap)
        os.write(go_w, b"1")
    except OSError:
        pass  # the child failed before it could wait: its own message says why
    finally:
        os.close(ready_r)
        os.close(go_w)
    _copy_stdio(stdio[0][1], stdio[1][0], stdio[2][0], pid)
    _pid, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _child(engine: Engine, ct: Container, argv: Sequence[str], stdio: Sequence[int],
           ready: int, go: int) -> NoReturn:
    """In the forked child: make the namespaces, pivot into the CT's root, fork the shell
    as PID 1; exit with its status (126 when the way in failed)."""
    try:
        from vzcore.lifecycle.execenv import detach
        from vzcore.linux import caps

        caps.last_cap()  # read now: vz_enter drops capabilities where /proc is not mounted
        detach(stdio)  # no descriptor of the admin's terminal goes in
        execstrings.wipe()
        dumpable.forbid()
        namespaces.unshare(["mnt"])
        mounts.make_private("/")  # nothing of what follows propagates to the host
        os.chdir(ct.root)
        mounts.pivot_to_cwd()  # the host's root is detached: no way back, unlike chroot
        names = [*NAMESPACES, *(("user",) if ct.idmap is not None else ())]
        namespaces.unshare(names)
        os.write(ready, b"1")
        if os.read(go, 1) != b"1":
            raise VzError(f"CT {ct.ctid}: vzctl gave up before the script could run")
        os.close(ready)
        os.close(go)
        if ct.idmap is not None:
            from vzcore.linux import userns

            userns.become_root()
        libc.sethostname(ct.hostname or "localhost")
        dumpable.forbid()
        _die_with_parent()  # after the credential change, which clears it
        shell = os.fork()  # PID 1 of the new PID namespace
        if shell == 0:
            _shell(engine, ct, argv)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # vzctl's end of the script's stdin too
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda s, _f: os.kill(shell, s))
        _pid, status = os.waitpid(shell, 0)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
    except VzError as exc:
        print(f"vzctl: {exc.message}", file=sys.stderr)
    except BaseException as exc:
        print(f"vzctl: CT {ct.ctid}: cannot run the script in its root: {describe(exc)}",
              file=sys.stderr)
    os._exit(126)


def _die_with_parent() -> None:
    """End this process with SIGKILL when its parent ends (a killed vzctl leaves no
    script running, nor a process holding the CT's lock)."""
    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before the request
        os._exit(126)


def _shell(engine: Engine, ct: Container, argv: Sequence[str]) -> NoReturn:
    from vzcore.lifecycle.enter import _exec

    try:
        os.chdir("/")
        # No state file: the CT does not run, so every plugin restricts from the config
        # alone (no record), as it restricted the CT's init.
        run = Run(ct, State(engine.paths.state_file(ct.ctid), ct.ctid, writable=False),
                  engine.plugins)
        engine.plugins.run_each("vz_enter", ct=ct, run=run)
        dumpable.forbid()
        _die_with_parent()  # PID 1 of its namespace: vzctl's SIGTERM would not reach it
    except BaseException as exc:
        print(f"vzctl: CT {ct.ctid}: {describe(exc)}", file=sys.stderr)
        os._exit(126)
    _exec(argv, ENV)
