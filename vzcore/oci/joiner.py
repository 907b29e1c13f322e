"""``vzcore-oci exec``: a process of ``--process`` (or the command line) joins the running
container through the engine's own join (:mod:`vzcore.lifecycle.enter`: cgroups, then
namespaces, every plugin's ``vz_enter``), then gets the OCI process's settings
(:func:`vzcore.oci.child.setup_process`) and execs.

``--detach`` returns once the process runs, with its host PID in ``--pid-file``: it is
then reaped by the engine's subreaper (conmon, containerd's shim), as with runc.
Without it, vzcore-oci waits and exits with the process's status.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any, NoReturn

from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.lifecycle import enter
from vzcore.oci import child
from vzcore.oci import seccomp as oci_seccomp
from vzcore.runtime import Run, State


def run(engine: Engine, ct: Container, state: State, process: Mapping[str, Any], *,
        detach: bool, pid_file: str | None, console_socket: str | None,
        seccomp: Mapping[str, Any] | None, preserve_fds: int = 0) -> int:
    """Run ``process`` in the CT; the exit status (0 with ``detach``)."""
    from vzcore.oci.runtime import _write_pid_file

    filter_program = oci_seccomp.compile_profile(seccomp)
    console = None
    if process.get("terminal") and console_socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(console_socket)
        console = sock.detach()
    engine.plugins.import_child_modules()
    run_ = Run(ct, state, engine.plugins)
    kept = list(range(3, 3 + preserve_fds))

    def payload() -> NoReturn:
        # the joiner gave us stdio (create's 0-2), closed everything else but what we
        # hold: the console socket and the preserved descriptors (inherited over fork)
        placed = child.setup_process(process, stdio=None, console=console, keep=kept,
                                     seccomp_filter=filter_program)
        child.exec_process(process, placed)

    stdio = [os.dup(fd) for fd in (0, 1, 2)]
    if detach:
        pid = enter.spawn_in_ct(run_, stdio, payload)
        if console is not None:
            os.close(console)
        if pid_file:
            _write_pid_file(pid_file, pid)
        return 0
    pid = enter._fork_joiner(run_, stdio, payload)
    if console is not None:
        os.close(console)
    if pid_file:
        _write_pid_file(pid_file, pid)
    _pid, status = os.waitpid(pid, 0)
    return enter._exit_status(status)
