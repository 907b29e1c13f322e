"""The host's side of the notify plugin: the installation's supervisor
(:mod:`vzcore.linux.notifyd`) started on demand, each CT registered at its start and dropped
at its stop, the supervisor stopped with the last CT."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

from vzcore.container import Container
from vzcore.errors import VzError
from vzcore.linux.daemon import Daemon
from vzcore.linux.procfs import ProcessId

NAME = "notify"


def daemon_of(ct: Container, directory: Path | None = None) -> Daemon:
    """The supervisor of ``ct``'s installation (files in ``RUN_DIR/notify``), in its own
    cgroup beside the CTs' (out of the calling vzctl's session)."""
    from vzcore.ctgroups import daemon_groups

    return Daemon.named(directory or Path(ct.paths.run_dir) / NAME, NAME,
                        cgroups=daemon_groups(ct, NAME))


def request(daemon: Daemon, process: ProcessId | None, message: dict[str, Any],
            fds: list[int] | None = None) -> dict[str, Any]:
    """One request to the supervisor's control socket; its answer."""
    with daemon.connect(process, kind=socket.SOCK_SEQPACKET) as sock:
        socket.send_fds(sock, [json.dumps(message).encode()], fds or [])
        data = sock.recv(65536)
    if not data:
        raise VzError(f"the seccomp supervisor ({daemon.directory}) closed the connection; "
                      f"see {daemon.log}")
    answer: dict[str, Any] = json.loads(data)
    return answer


def ensure(daemon: Daemon) -> ProcessId:
    """The running supervisor, started if none runs; the caller holds :meth:`Daemon.locked`."""
    process = daemon.running()
    if process is None:
        _child, process = daemon.spawn([sys.executable, "-m", "vzcore.linux.notifyd",
                                        str(daemon.directory)])
    return process


def register(ct: Container, daemon: Daemon, figures: dict[str, Any]) -> None:
    """Start the supervisor if needed and tell it the CT's figures."""
    fix = (f"see {daemon.log}, or do without it: "
           f"'vzctl set {ct.ctid} --syscall-intercept off --save'")
    with daemon.locked():
        try:
            process = ensure(daemon)
            answer = request(daemon, process, {"op": "register", "ct": figures})
        except VzError as exc:
            raise VzError(f"CT {ct.ctid}: {exc}; {fix}") from None
        except OSError as exc:
            raise VzError(f"CT {ct.ctid}: the seccomp supervisor does not answer "
                          f"({exc.strerror}); {fix}") from None
    if not answer.get("ok"):
        raise VzError(f"CT {ct.ctid}: the seccomp supervisor refused the CT: "
                      f"{answer.get('error')}; {fix}")


def drop(ct: Container, daemon: Daemon) -> None:
    """Forget the CT; stop the supervisor when no CT is left (under its lock, so that a
    start registering meanwhile never finds it gone)."""
    with daemon.locked():
        process = daemon.running()
        if process is None:
            daemon.forget()
            daemon.remove_cgroups()
            return
        try:
            left = request(daemon, process, {"op": "drop", "ctid": ct.ctid}).get("cts", 1)
        except OSError:
            return  # not listening (yet or any more): the next start repairs it
        if left == 0:
            daemon.stop(process)
            daemon.forget()
            daemon.remove_cgroups()
