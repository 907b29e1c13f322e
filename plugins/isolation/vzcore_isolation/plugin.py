"""Hook implementations of the isolation plugin (subsystem ``isolation``).

The modules its hooks in the CT's init and in a joining process use are
:data:`CHILD_MODULES`: the engine imports them before it forks (after the root switch the
host's files are out of reach); the other hooks import what they need when they run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from typing import TYPE_CHECKING

from vzcore import hookimpl
from vzcore.plugin import PluginInfo
from vzcore_isolation.record import IsolationRecord

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Parameter
    from vzcore.runtime import Run

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")
DEFAULT_HOSTNAME = "localhost"
CHILD_MODULES = ("vzcore.linux.caps", "vzcore.linux.mounts", "vzcore.linux.userns",
                 "vzcore_isolation.capabilities", "vzcore_isolation.rootfs",
                 "vzcore_isolation.system", "vzcore_isolation.initkind")


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="isolation",
                      summary="own pid/mount/uts/ipc/net/cgroup namespaces, /proc, /sys, /dev, "
                              "capabilities",
                      child_modules=CHILD_MODULES, record=IsolationRecord)


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore_isolation import capabilities

    yield Parameter(name="capability", key="CAPABILITY", type=capabilities.SettingType(),
                    multiple=True, merge=capabilities.merge,
                    help="grant or revoke a capability (e.g. sys_time:on, net_admin:off)")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    from vzcore.errors import InvalidValue
    from vzcore_isolation import capabilities

    text = changes["CAPABILITY"].new if "CAPABILITY" in changes else ct.get("CAPABILITY")
    try:
        capabilities.kept(text, privileged=ct.idmap is None)
    except capabilities.CapabilityError as exc:
        raise InvalidValue(f"CT {ct.ctid}: CAPABILITY={text!r}: {exc}; fix it with "
                           f"'vzctl set {ct.ctid} --capability NAME:on|off --save'") from None


@hookimpl
def vz_namespaces(ct: Container) -> Iterable[str]:
    return (*NAMESPACES, "user") if ct.idmap is not None else NAMESPACES


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    """Detect the CT's init kind and record it when it boots a distribution; for systemd
    started with ``--wait``, make the notify socket that reads."""
    from vzcore.lifecycle.start import WAIT_OPTION
    from vzcore_isolation import initkind, ready

    kind = initkind.detect(str(ct.root))
    if not kind.system:
        return  # no record: a CT without one is handled as busybox, as it always was
    notify = kind.name == initkind.SYSTEMD and bool(run.options.get(WAIT_OPTION))
    host_dir = ct.paths.run_dir / f"{ct.ctid}.host" if notify else None
    run.record = IsolationRecord(init_kind=kind.name,
                                 host_dir=str(host_dir) if host_dir is not None else None)
    if host_dir is not None:
        ready.listen(ct.ctid, host_dir, ct.root_owner)


@hookimpl
def vz_setup_host(ct: Container, run: Run, pid: int) -> None:
    """Write the CT's ID maps (its 0..65535 to its host range, or a general map: several
    ranges; we write as the privileged parent, so setgroups need not be denied)."""
    idmap = ct.idmap
    if idmap is not None:
        from vzcore.linux import userns

        userns.write_maps(pid, idmap)


def _become_ct_root(ct: Container) -> None:
    if ct.idmap is not None:
        from vzcore.linux import userns

        userns.become_root()


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    from vzcore.lifecycle.console import CONSOLE_FD_OPTION, CONSOLE_OPTION
    from vzcore.lifecycle.spawn import own_namespace
    from vzcore.linux import safefs
    from vzcore_isolation import initkind, rootfs, system

    console = run.options.get(CONSOLE_OPTION)
    held = run.options.get(CONSOLE_FD_OPTION)
    from vzcore.linux.devnodes import BLOCK_NODES_OPTION

    rootfs.build(run.root, ct.root_owner,
                 console=(console, held) if console and held is not None else None,
                 tty_gid=ct.tty_group,
                 own_mount_namespace=own_namespace(run.options, "mnt"),
                 block_nodes=[(str(n), int(d)) for n, d in run.options.get(BLOCK_NODES_OPTION) or ()])
    record = run.record
    kind = initkind.KINDS.get(record.init_kind if record else "", initkind.KINDS[initkind.BUSYBOX])
    if kind.system:
        groups = run.state.cgroups.dirs if run.state.cgroups is not None else ()
        root_fd = safefs.open_root(run.root)
        try:
            system.build(root_fd, ct.root_owner, groups, record.host_dir)
        finally:
            os.close(root_fd)
        from vzcore.lifecycle.spawn import INIT_ENV_OPTION

        env = kind.environment(ct_uuid(ct), notify=bool(record.host_dir))
        run.options.setdefault(INIT_ENV_OPTION, {}).update(env)


def ct_uuid(ct: Container) -> str:
    """The CT's ``container_uuid``: stable across its boots, unique to the installation
    and CTID (systemd makes /etc/machine-id from it when the template left none)."""
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"vzcore:{os.path.realpath(ct.paths.prefix)}:{ct.ctid}"))


@hookimpl
def vz_switch_root(ct: Container, run: Run) -> bool:
    from vzcore.lifecycle.spawn import CHROOT_OPTION, own_namespace
    from vzcore.linux import mounts

    if not own_namespace(run.options, "mnt"):
        # A mount namespace shared with the host or joined (an OCI spec's): pivot_root
        # would move the root of every process there; chroot moves only this one, and
        # init follows (CHROOT_OPTION), as runc does without a mount namespace.
        os.chroot(".")
        os.chdir("/")
        run.options[CHROOT_OPTION] = run.root
        return True
    mounts.pivot_to_cwd()  # rootfs.build left the working directory at the CT's root
    return True


def _kept(ct: Container) -> frozenset[int]:
    from vzcore_isolation import capabilities

    return capabilities.kept(ct.get("CAPABILITY"), privileged=ct.idmap is None)


@hookimpl
def vz_finalize_child(ct: Container, run: Run) -> None:
    from vzcore.lifecycle.spawn import SHARE_OPTION, own_namespace
    from vzcore.linux import caps, libc

    _become_ct_root(ct)
    # never in the host's UTS namespace (a start sharing it); in a joined one only a
    # host name the CT was given
    if "uts" not in (run.options.get(SHARE_OPTION) or ()) and (
            own_namespace(run.options, "uts") or ct.hostname):
        libc.sethostname(ct.hostname or DEFAULT_HOSTNAME)
    caps.limit_to(_kept(ct))


@hookimpl
def vz_enter(ct: Container, run: Run) -> None:
    from vzcore.linux import caps

    _become_ct_root(ct)
    caps.limit_to(_kept(ct))


@hookimpl
def vz_stop(ct: Container, run: Run) -> None:
    """Ask the booted init to shut down its own way (:mod:`vzcore_isolation.initkind`):
    systemd gets ``SIGRTMIN+3``; sysvinit ``telinit 0`` inside; any other runs ``halt``
    inside, as vzctl does.  If no command worked, init gets SIGPWR (LXC's default halt
    signal)."""
    from vzcore.lifecycle.enter import run_in_ct
    from vzcore.linux.procfs import kill
    from vzcore_isolation import initkind

    if run.state.init is None:
        return
    from vzcore.linux.procfs import namespace_pids

    if namespace_pids(run.state.init.pid)[-1:] != [1]:
        # Not the init of a PID namespace of its own (an OCI container sharing the host's
        # or joining one): a halt inside would signal that namespace's PID 1, the host's
        # init perhaps.  The process itself gets SIGTERM, as runc's kill sends.
        kill(run.state.init, signal.SIGTERM)
        return
    record = run.record
    kind = initkind.KINDS.get(record.init_kind if record else "", initkind.KINDS[initkind.BUSYBOX])
    if kind.stop_signal is not None:
        kill(run.state.init, kind.stop_signal)
        return
    for command in kind.stop_command:
        if run_in_ct(run, command) == 0:
            break
    else:
        kill(run.state.init, signal.SIGPWR)
        return
    if kind.name == initkind.SYSVINIT:
        _end_halted_sysvinit(ct, run)


def _end_halted_sysvinit(ct: Container, run: Run) -> None:
    """sysvinit's last step at runlevel 0 is ``halt -f``: reboot(2), which ends init only
    with ``CAP_SYS_BOOT`` over the CT's PID namespace.  A CT with a user namespace has it
    (init is gone by now); a privileged CT's PID namespace is the host's user namespace's,
    whose capability it lacks (docs/system-cts.md), so halt fails and init stays.  Once
    runlevel 0's ``rc`` ran (services stopped, processes signalled, file systems synced),
    end init as halt would have."""
    from vzcore.lifecycle.stop import stop_timeout
    from vzcore.linux.procfs import kill
    from vzcore_isolation import ready

    assert run.state.init is not None
    if ready.halted(run.state.init, stop_timeout(ct)):
        kill(run.state.init, signal.SIGKILL)


@hookimpl
def vz_wait_ready(ct: Container, run: Run, timeout: float) -> bool:
    """Wait until the booted init says it is up (:mod:`vzcore_isolation.ready`)."""
    from vzcore_isolation import initkind, ready

    record = run.record
    ready.wait(run, record.init_kind if record else initkind.BUSYBOX, timeout)
    return True


@hookimpl
def vz_post_stop(ct: Container, run: Run) -> None:
    """Remove the host directory of the CT's notify socket."""
    from vzcore.linux import safefs

    record = run.record
    if record is not None and record.host_dir and os.path.isdir(record.host_dir):
        safefs.remove_tree(record.host_dir)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    if run is not None and "HOSTNAME" in changes:
        from vzcore.linux import libc, namespaces

        name = changes["HOSTNAME"].new or DEFAULT_HOSTNAME
        namespaces.call_in(run.init_pid, ["uts"], lambda: libc.sethostname(name))
