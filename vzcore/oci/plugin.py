"""The ``oci`` plugin (subsystem ``oci``): what an OCI container's init does beyond a
vzcore CT's, in vzcore's own start sequence.

vzcore-oci's installation names it in ``PLUGINS`` (:mod:`vzcore.oci.store`); it acts only
on CTs whose config has ``OCI_BUNDLE``.  Subsystem ``oci`` is not in the engine's
subsystem order, so its hooks run after isolation's, the devices', the cpu's and
security's: the CT's standard file system view exists when ``vz_setup_child`` adds the
bundle's mounts, and its capabilities are the CT's when ``vz_finalize_child`` narrows
them to the process's and execs it.

The start's options (``run.options``, given by :func:`vzcore.oci.runtime.create`) carry
what only this start has: the descriptors create opened for the process (the exec fifo,
the console socket's connection, the saved stdio and ``--preserve-fds``; create starts
the CT with :data:`~vzcore.lifecycle.spawn.LOCAL_HOLDER_OPTION`, so init inherits them)
and the namespaces to join (:data:`~vzcore.lifecycle.spawn.JOIN_OPTION`, entered by the
holder that forks init).  ``vz_setup_child`` runs in the start's builder and
``vz_finalize_child`` in init, two processes: the first hands the spec to the second in
:data:`SPEC_OPTION` (the builder's options reach init).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

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
JOINED_MNT_KEY = "OCI_JOINED_MNT"
"""``DEV:INODE:MOUNT_ID`` of the mount namespace a container joined by path and of the
mount at its root there before the start (:mod:`vzcore.oci.mountns`): delete unmounts the
view there, if that namespace still is the one joined."""
FIFO_OPTION = "oci_fifo_fd"
"""The exec fifo, opened ``O_PATH`` by create (init opens it for writing through it)."""
CONSOLE_OPTION = "oci_console_fd"
"""create's connection to ``--console-socket`` (only with ``process.terminal``)."""
STDIO_OPTION = "oci_stdio"
PRESERVE_OPTION = "oci_preserve"
HOOKS_OPTION = "oci_hooks_fd"
"""create's socket for the createRuntime hooks (:func:`vzcore.oci.hooks.serve_create_runtime`),
when the spec has createRuntime or createContainer hooks."""
SPEC_OPTION = "oci_spec"
"""config.json as the builder read it (the host's file is out of init's reach)."""
_SHARE = "share_namespaces"
""":data:`vzcore.lifecycle.spawn.SHARE_OPTION` (not imported with the plugin)."""
CHILD_MODULES = ("vzcore.oci.child", "vzcore_isolation.rootfs", "vzcore.oci.spec", "vzcore.oci.seccomp",
                 "vzcore.linux.seccomp", "vzcore.oci.hooks", "resource", "termios", "array")


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
    """The bundle's rootfs at the CT's root, and what a container sharing the runtime's
    mount namespace had mounted on it; in a joined mount namespace, its view there."""
    from vzcore.oci.runtime import umount_root

    umount_root(ct.root)
    _umount_in_joined(ct)


def _umount_in_joined(ct: Container) -> None:
    """A container that joined a mount namespace by path built its view there
    (:mod:`vzcore.oci.mountns`)."""
    recorded = ct.get(JOINED_MNT_KEY)
    if not recorded:
        return
    import json

    from vzcore.oci import mountns
    from vzcore.oci.spec import Bundle, namespace_paths

    try:
        bundle = Bundle(Path(ct.get(BUNDLE_KEY) or "/"), json.loads(_config(ct).read_text()))
    except (OSError, ValueError):
        return
    path = namespace_paths(bundle.linux()).get("mnt")
    if path:
        mountns.cleanup(recorded, path, str(bundle.rootfs))


def _own_unified_group(run: Run) -> str | None:
    """The container's cgroup2 group as a path in this (the builder's) mount namespace."""
    groups = run.state.cgroups
    for d in groups.dirs if groups is not None else ():
        if d.version == 2 and d.directory.is_dir():
            return str(d.directory)
    return None


def _bundle(ct: Container) -> str | None:
    return ct.get(BUNDLE_KEY)


def _config(ct: Container) -> Path:
    text = ct.get(CONFIG_KEY)
    return Path(text) if text else Path(ct.get(BUNDLE_KEY) or "/", "config.json")


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    """In the builder: read config.json while the host's files are in view, make the
    bundle's mounts and paths, set its sysctls (the builder is in init's network, IPC and
    UTS namespaces, the joined ones included); hand the spec to init."""
    bundle = _bundle(ct)
    if bundle is None:
        return
    import json

    from vzcore.oci import child

    with open(_config(ct)) as f:
        spec = json.load(f)
    joined = any(n.get("path") for n in (spec.get("linux") or {}).get("namespaces") or [])
    child.do_mounts(run.root, spec, remount=joined, idmap=ct.idmap)
    if "cgroup" in (run.options.get(_SHARE) or ()):
        child.mount_cgroup_shared(run.root, spec, _own_unified_group(run))
    child.sysctls(spec)
    run.options[SPEC_OPTION] = spec
    hooks_fd = run.options.get(HOOKS_OPTION)
    if hooks_fd is not None:
        # the runtime spec's order, after the mounts and before the root switch:
        # createRuntime on the host (create runs them), then createContainer here
        from vzcore.oci import hooks

        state = hooks.request_create_runtime(int(hooks_fd))
        hooks.run_create_container(spec, state, run.root,
                                   int(state["pid"]) if ct.idmap is not None else None)


@hookimpl
def vz_finalize_child(ct: Container, run: Run) -> None:
    """The process: its terminal or stdio, user, capabilities, rlimits, seccomp; then tell
    ``create`` it is ready (closing the engine's pipe), wait on the exec fifo for
    ``start``, run the startContainer hooks and exec the spec's program."""
    if _bundle(ct) is None:
        return None
    from vzcore.linux import libc
    from vzcore.oci import child, seccomp

    spec = run.options[SPEC_OPTION]
    process = spec.get("process")
    if process is None:  # 'start' refuses such a container and kills this process
        child.close_others([])
        signal.pause()
    if spec.get("domainname"):
        name = spec["domainname"].encode()
        libc.check(libc.syscall("setdomainname", name, len(name)), "setdomainname")
    if "cgroup" not in (run.options.get(_SHARE) or ()):  # else the builder's
        child.mount_cgroup(spec)
    child.root_propagation(spec)
    saved = list(run.options.get(STDIO_OPTION) or [])
    console = run.options.get(CONSOLE_OPTION) if process.get("terminal") else None
    keep = child.setup_process(process, stdio=saved or None, console=console,
                               keep=list(run.options.get(PRESERVE_OPTION) or []),
                               seccomp_filter=seccomp.compile_profile(
                                   (spec.get("linux") or {}).get("seccomp")))
    fifo = int(run.options[FIFO_OPTION])
    child.close_others([*keep, fifo])
    try:  # create has returned: from here on errors go to the process's stderr
        started = child.wait_fifo(fifo)
    except Exception as exc:
        os.write(2, f"vzcore-oci: container {ct.get(ID_KEY)}: {exc}\n".encode())
        os._exit(127)
    try:
        from vzcore.oci import hooks

        init = run.state.init
        hooks.run_in_container(spec, "startContainer", {
            "ociVersion": hooks.OCI_VERSION, "id": ct.get(ID_KEY), "status": "created",
            "pid": init.pid if init is not None else os.getpid(), "bundle": _bundle(ct),
            "annotations": spec.get("annotations") or {}})
    except Exception as exc:
        child.say_failed(started, str(exc))  # start fails with it and removes the container
        os._exit(127)
    child.say_started(started)
    child.exec_process(process, keep)
