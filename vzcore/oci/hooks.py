"""OCI hooks: programs the spec names, run with the container's state on stdin.

When each kind runs in vzcore-oci (docs/oci-runtime.md), in the runtime spec's order:

``createRuntime``
    by ``create``, on the host (in vzcore-oci's own namespaces), once the container's
    mounts are made and before its root switch: the start's builder asks ``create`` to run
    them (:func:`serve_create_runtime`, :func:`request_create_runtime`) and waits.
``createContainer``
    next, by the builder, in the container's namespaces (mount, PID, network, IPC, UTS, and
    its user namespace as the container's root), before the root switch: the path is
    resolved in the host's tree, the working directory is the container's root
    (:func:`run_create_container`).
``prestart``
    by ``start``, on the host, before it releases the process (runtime-spec 1.0: "after
    the start operation is called but before the user-specified program command is
    executed"; runc runs them at create).
``startContainer``
    by the container's process after ``start`` released it, inside the container, before
    the program (:func:`run_in_container`).
``poststart``
    by ``start`` once the program runs; ``poststop`` by ``delete``.

A failing createRuntime or createContainer hook fails ``create``, a failing prestart or
startContainer hook fails ``start``; either way the container is removed and the poststop
hooks run (the lifecycle's "continue at delete").  A failing poststart or poststop hook is
a warning and the next one runs, as the spec says.  The state on a hook's stdin has the
status of its moment: ``creating`` (createRuntime, createContainer), ``created``
(prestart, startContainer), ``running`` (poststart), ``stopped`` (poststop).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from vzcore.errors import VzError

OCI_VERSION = "1.0.2"
CREATING = "creating"
_REQUEST = b"R"
_OK, _FAILED = b"0", b"E"
_MAX_REPLY = 1 << 20


def hooks_of(spec: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return list((spec.get("hooks") or {}).get(kind) or [])


def run_on_host(spec: Mapping[str, Any], kind: str, state: Mapping[str, Any],
                warn: Callable[[str], None] | None = None) -> None:
    """Run the spec's hooks of ``kind``, each with ``state`` (the runtime-spec state) as
    JSON on stdin; raise on the first failure, or with ``warn`` (poststart, poststop: the
    spec's rule) report each failure there and go on with the next hook."""
    payload = json.dumps(state).encode()
    for hook in hooks_of(spec, kind):
        try:
            _run_one(hook, kind, payload)
        except VzError as exc:
            if warn is None:
                raise
            warn(f"warning: {exc}")


def _run_one(hook: Mapping[str, Any], kind: str, payload: bytes, *, cwd: str | None = None,
             enter: Callable[[], None] | None = None) -> None:
    """One hook: its args (``args[0]`` is its name, the path is what runs), exactly its
    env, the state on stdin, its ``timeout``; ``enter`` runs in the forked child before
    the exec (joining the container's user namespace)."""
    args = list(hook.get("args") or [hook["path"]])
    env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
    try:
        done = subprocess.run(args, executable=hook["path"], input=payload, env=env, cwd=cwd,
                              capture_output=True, timeout=hook.get("timeout"), check=False,
                              preexec_fn=enter)
    except (OSError, subprocess.SubprocessError) as exc:
        raise VzError(f"{kind} hook {hook['path']}: {exc}") from None
    if done.returncode != 0:
        raise VzError(f"{kind} hook {hook['path']} failed with status {done.returncode}: "
                      f"{done.stderr.decode(errors='replace').strip()}")


# -- createRuntime: asked by the builder, run by create on the host ---------------------

@contextmanager
def serve_create_runtime(spec: Mapping[str, Any],
                         state: Callable[[], Mapping[str, Any]]) -> Iterator[int | None]:
    """While the start runs: a descriptor (inherited by the builder, named in its options)
    over which the builder asks for the createRuntime hooks once the container's mounts
    are made; a thread of ``create`` runs them with ``state()`` (status ``creating``) and
    answers with that state or the failure.  ``None`` when the spec has neither
    createRuntime nor createContainer hooks (no thread, no descriptor)."""
    if not hooks_of(spec, "createRuntime") and not hooks_of(spec, "createContainer"):
        yield None
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)

    def serve() -> None:
        try:
            if ours.recv(16) != _REQUEST:
                return  # the start ended (or failed) before the builder asked
            now = {**state(), "status": CREATING}
            run_on_host(spec, "createRuntime", now)
            reply = _OK + json.dumps(now).encode()
        except BaseException as exc:  # the builder reports it as the create's error
            reply = _FAILED + str(exc).encode()
        try:
            ours.send(reply[:_MAX_REPLY])
        except OSError:
            pass  # the builder is gone: the start reports why

    thread = threading.Thread(target=serve, name="oci-create-runtime-hooks", daemon=True)
    thread.start()
    try:
        yield theirs.fileno()
    finally:
        ours.shutdown(socket.SHUT_RDWR)  # a thread still waiting for a request ends
        thread.join()
        ours.close()
        theirs.close()


def request_create_runtime(fd: int) -> dict[str, Any]:
    """In the builder: have ``create`` run the createRuntime hooks; return the state it
    gave them (for the createContainer hooks), raise their failure."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.send(_REQUEST)
        reply = sock.recv(_MAX_REPLY)
    finally:
        sock.close()
    if reply[:1] == _OK:
        return dict(json.loads(reply[1:]))
    raise VzError(reply[1:].decode(errors="replace") if reply else
                  "vzcore-oci create did not answer for the createRuntime hooks")


def run_create_container(spec: Mapping[str, Any], state: Mapping[str, Any], root: str,
                         userns_pid: int | None) -> None:
    """In the builder (the host's root in the container's mount, PID, network, IPC and UTS
    namespaces, before the root switch): each createContainer hook with the working
    directory at the container's root ``root``; with ``userns_pid`` (the container's init)
    it joins that process's user namespace and becomes its root, as in runc, where the
    hook is forked by the container's own init."""
    hooks = hooks_of(spec, "createContainer")
    if not hooks:
        return
    from vzcore.linux import libc, namespaces
    from vzcore.linux import userns as userns_mod

    payload = json.dumps(state).encode()
    userns = os.open(f"/proc/{userns_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC) \
        if userns_pid is not None else None

    def enter() -> None:
        if userns is not None:
            libc.setns(userns, namespaces.FLAGS["user"])
            userns_mod.become_root()

    try:
        for hook in hooks:
            _run_one(hook, "createContainer", payload, cwd=root, enter=enter)
    finally:
        if userns is not None:
            os.close(userns)


# -- startContainer: in the container's process, after start released it ----------------

def run_in_container(spec: Mapping[str, Any], kind: str, state: Mapping[str, Any]) -> None:
    """The container's process runs these before its program (after its root switch, as
    the process's user: path and tools are the container's)."""
    payload = json.dumps(state).encode()
    for hook in hooks_of(spec, kind):
        _run_one(hook, kind, payload)
