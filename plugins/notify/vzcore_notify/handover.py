"""The CT's side of the notify plugin: the hand-over socket the start makes in the CT's
``/dev`` and the filter each process installs before it execs, whose listener it hands to
the supervisor there (see :mod:`vzcore.linux.notifyd`).

Runs inside the CT's namespaces (``vz_setup_child``, ``vz_finalize_child``, ``vz_enter``):
only modules the plugin names as child modules.
"""

from __future__ import annotations

import json
import os
import socket

from vzcore.container import Container
from vzcore.errors import VzError
from vzcore.linux import caps, seccomp, seccomp_notify
from vzcore.linux.notifyd import HANDOVER_NAME, SOCKET_NAME
from vzcore.linux.procfs import ProcessId

CAP_SYS_ADMIN = 21
CT_SOCKET = f"/dev/{HANDOVER_NAME}"
"""Where the CT's processes find the hand-over socket."""


def make_socket(ct: Container, root: str, directory: str, init: ProcessId) -> None:
    """In the builder (the host's root, the host's files still visible): bind the CT's
    hand-over socket in the CT's fresh ``/dev`` (the CT's root owns it, mode 0600) and give
    it to the supervisor with init's identity."""
    path = os.path.join(root, "dev", HANDOVER_NAME)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as sock:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock.bind(path)
        uid, gid = ct.idmap.root if ct.idmap is not None else (0, 0)
        os.chown(path, uid, gid)
        os.chmod(path, 0o600)
        sock.listen(16)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as control:
            try:
                control.connect(os.path.join(directory, SOCKET_NAME))
                socket.send_fds(control, [json.dumps({
                    "op": "root", "ctid": ct.ctid, "init": [init.pid, init.start_time]}).encode()],
                    [sock.fileno()])
                answer = json.loads(control.recv(65536) or b"{}")
            except OSError as exc:
                raise VzError(f"CT {ct.ctid}: cannot reach the seccomp supervisor at "
                              f"{directory}: {exc.strerror}; see its log there") from None
    if not answer.get("ok"):
        raise VzError(f"CT {ct.ctid}: the seccomp supervisor refused the CT's hand-over socket: "
                      f"{answer.get('error')}")


def intercept(ct: Container, calls: tuple[str, ...], required: bool) -> None:
    """In a process of the CT about to exec: install the notify filter for ``calls`` and
    hand its listener to the supervisor.  Without a reachable hand-over socket: an error
    when ``required`` (the CT's init), else nothing is installed (a ``vzctl exec`` after
    the supervisor's keeper died runs as without interception)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(CT_SOCKET)
        except OSError as exc:
            if required:
                raise VzError(f"CT {ct.ctid}: cannot reach the seccomp supervisor through "
                              f"{CT_SOCKET}: {exc.strerror}") from None
            return
        if not caps.in_effective_set(CAP_SYS_ADMIN):
            caps.set_no_new_privs()  # what the kernel asks of a process without CAP_SYS_ADMIN
        # Connected first: a filter whose listener reaches no supervisor would leave the
        # calls waiting (or failing with ENOSYS once this process closes it).
        listener = seccomp.install(seccomp.notify_filter(calls),
                                   seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER)
        try:
            sock.settimeout(10)
            answer = seccomp_notify.send_listener(sock, listener)
        except OSError as exc:
            answer = f"NO {exc.strerror}".encode()
        finally:
            os.close(listener)
        if answer != b"OK":
            raise VzError(f"CT {ct.ctid}: the seccomp supervisor did not take the listener "
                          f"({answer.decode(errors='replace')}); the intercepted calls "
                          f"({', '.join(calls)}) would fail with ENOSYS")
    finally:
        sock.close()
