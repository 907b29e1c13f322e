"""OCI hooks: programs the spec names, run with the container's state on stdin.

When each kind runs in vzcore-oci (docs/oci-runtime.md):

``createRuntime``
    by ``create``, on the host, once the container's init exists in its namespaces and
    waits on the exec fifo (after its root switch: runc runs them just before it; a hook
    that must mount into the container's root before the switch is not served).
``prestart``
    by ``start``, on the host, before it releases the process (runtime-spec 1.0: "after
    the start operation is called but before the user-specified program command is
    executed"; runc runs them at create); a failing one makes ``start`` delete the
    container (the lifecycle's step 9).
``createContainer``
    refused at create: its path is resolved in the runtime's namespace but it must run in
    the container's, which vzcore's init cannot reach after the root switch.
``startContainer``
    by the container's init after ``start``, inside the container, before the program.
``poststart``
    by ``start`` once the program runs; ``poststop`` by ``delete``.

A failing createRuntime, prestart or startContainer hook fails the create (or start); a
failing poststart or poststop hook is a warning and the next one runs, as the spec says.
The state on a hook's stdin has the status of its moment: ``created`` (createRuntime,
prestart), ``running`` (poststart), ``stopped`` (poststop).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from vzcore.errors import VzError


def run_on_host(spec: Mapping[str, Any], kind: str, state: Mapping[str, Any],
                warn: Callable[[str], None] | None = None) -> None:
    """Run the spec's hooks of ``kind``, each with ``state`` (the runtime-spec state) as
    JSON on stdin; raise on the first failure, or with ``warn`` (poststart, poststop: the
    spec's rule) report each failure there and go on with the next hook."""
    payload = json.dumps(state).encode()
    for hook in (spec.get("hooks") or {}).get(kind) or []:
        try:
            _run_one(hook, kind, payload)
        except VzError as exc:
            if warn is None:
                raise
            warn(f"warning: {exc}")


def _run_one(hook: Mapping[str, Any], kind: str, payload: bytes) -> None:
    args = list(hook.get("args") or [hook["path"]])
    env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
    try:
        done = subprocess.run(args, executable=hook["path"], input=payload, env=env,
                              capture_output=True, timeout=hook.get("timeout"), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VzError(f"{kind} hook {hook['path']}: {exc}") from None
    if done.returncode != 0:
        raise VzError(f"{kind} hook {hook['path']} failed with status {done.returncode}: "
                      f"{done.stderr.decode(errors='replace').strip()}")


def run_in_container(spec: Mapping[str, Any], kind: str) -> None:
    """The container's init runs these before its program (fork, exec, wait)."""
    for hook in (spec.get("hooks") or {}).get(kind) or []:
        args = list(hook.get("args") or [hook["path"]])
        env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
        pid = os.fork()
        if pid == 0:
            try:
                os.execve(hook["path"], args, env)
            finally:
                os._exit(127)
        _pid, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise VzError(f"{kind} hook {hook['path']} failed with status "
                          f"{os.waitstatus_to_exitcode(status)}")
