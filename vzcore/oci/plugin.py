"""The ``oci`` plugin (subsystem ``oci``): what an OCI container's init does beyond a
vzcore CT's, in vzcore's own start sequence.

vzcore-oci's installation names it in ``PLUGINS`` (:mod:`vzcore.oci.store`); it acts only
on CTs whose config has ``OCI_BUNDLE``.  Subsystem ``oci`` is not in the engine's
subsystem order, so its hooks run after isolation's, the devices', the cpu's and
security's: the CT's standard file system view exists when ``vz_setup_child`` adds the
bundle's mounts, and its capabilities are the CT's when ``vz_finalize_child`` narrows
them to the process's and execs it.

The start's options (``run.options``, given by :func:`vzcore.oci.runtime.create`, copied
into init by the fork) carry what only this start has: the exec fifo, the console
socket, the descriptors saved for the process's stdio and ``--preserve-fds``.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.container import Container
    from vzcore.runtime import Run

LAYOUT = "oci"
BUNDLE_KEY = "OCI_BUNDLE"
CONFIG_KEY = "OCI_CONFIG"
"""The copy of config.json that create took (the bundle's own may change after)."""
ID_KEY = "OCI_ID"
FIFO_OPTION = "oci_fifo"
CONSOLE_OPTION = "oci_console_socket"
STDIO_OPTION = "oci_stdio"
PRESERVE_OPTION = "oci_preserve"
CHILD_MODULES = ("vzcore.oci.child", "vzcore_isolation.rootfs", "vzcore.oci.spec", "vzcore.oci.seccomp",
                 "vzcore.linux.seccomp", "resource", "termios", "array")

_child: dict[str, Any] = {}
"""In init, between its two hooks: the spec, the fifo and the console socket."""


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="oci",
                      summary="OCI containers: the bundle's rootfs (layout 'oci'), mounts "
                              "and process, exec fifo",
                      child_modules=CHILD_MODULES, variants={"VE_LAYOUT": (LAYOUT,)})


@hookimpl
def vz_mount(ct: Container) -> None:
    """Layout ``oci``: the bundle's rootfs, bound at the CT's root (``root.readonly`` is
    applied inside, where the CT's own mounts are made)."""
    from vzcore.linux import mounts
    from vzcore.oci.spec import Bundle

    bundle = _bundle(ct)
    if bundle is None:
        from vzcore.errors import MountError

        raise MountError(f"CT {ct.ctid}: layout 'oci' needs {BUNDLE_KEY} in its config")
    mounts.bind(Bundle.load(bundle, _config(ct)).rootfs, ct.root)


@hookimpl
def vz_umount(ct: Container) -> None:
    from vzcore.linux import mounts

    if mounts.is_mount_point(ct.root):
        mounts.umount(ct.root, detach=True)


def _bundle(ct: Container) -> str | None:
    return ct.get(BUNDLE_KEY)


def _config(ct: Container) -> Path:
    text = ct.get(CONFIG_KEY)
    return Path(text) if text else Path(ct.get(BUNDLE_KEY) or "/", "config.json")


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    """Read config.json while the host's files are in view, make the bundle's mounts and
    paths, set its sysctls; open the exec fifo (O_PATH) and connect the console socket."""
    bundle = _bundle(ct)
    if bundle is None:
        return
    import json

    from vzcore.oci import child, seccomp

    with open(_config(ct)) as f:
        spec = json.load(f)
    joined = child.join_namespaces(spec)  # before the mounts: /sys, mqueue show them
    child.do_mounts(run.root, spec, remount=joined)
    child.sysctls(spec)
    _child["spec"] = spec
    _child["fifo"] = os.open(run.options[FIFO_OPTION], os.O_PATH | os.O_CLOEXEC)
    _child["filter"] = seccomp.compile_profile((spec.get("linux") or {}).get("seccomp"))
    path = run.options.get(CONSOLE_OPTION)
    if path and (spec.get("process") or {}).get("terminal"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        _child["console"] = sock.detach()


@hookimpl
def vz_finalize_child(ct: Container, run: Run) -> None:
    """The process: its terminal or stdio, user, capabilities, rlimits, seccomp; then tell
    ``create`` it is ready (closing the engine's pipe), wait on the exec fifo for
    ``start``, run the startContainer hooks and exec the spec's program."""
    if _bundle(ct) is None:
        return None
    from vzcore.linux import libc
    from vzcore.oci import child

    spec = _child["spec"]
    process = spec.get("process")
    if process is None:  # 'start' refuses such a container and kills this process
        from vzcore.oci import child

        child.close_others([])
        signal.pause()
    if spec.get("domainname"):
        name = spec["domainname"].encode()
        libc.check(libc.syscall("setdomainname", name, len(name)), "setdomainname")
    child.mount_cgroup(spec)
    child.root_propagation(spec)
    saved = list(run.options.get(STDIO_OPTION) or [])
    keep = child.setup_process(process, stdio=saved or None, console=_child.get("console"),
                               keep=list(run.options.get(PRESERVE_OPTION) or []),
                               seccomp_filter=_child.get("filter"))
    fifo = _child["fifo"]
    child.close_others([*keep, fifo])
    try:  # create has returned: from here on errors go to the process's stderr
        child.wait_fifo(fifo)
        from vzcore.oci import hooks

        hooks.run_in_container(spec, "startContainer")
    except Exception as exc:
        os.write(2, f"vzcore-oci: container {ct.get(ID_KEY)}: {exc}\n".encode())
        os._exit(127)
    child.exec_process(process, keep)
