"""Hook implementations of the isolation plugin (subsystem ``isolation``).

The modules its hooks in the CT's init and in a joining process use are
:data:`CHILD_MODULES`: the engine imports them before it forks (after the root switch the
host's files are out of reach); the other hooks import what they need when they run.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from typing import TYPE_CHECKING

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Parameter
    from vzcore.runtime import Run

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")
DEFAULT_HOSTNAME = "localhost"
HALT = ("halt",)
CHILD_MODULES = ("vzcore.linux.caps", "vzcore.linux.mounts", "vzcore.linux.userns",
                 "vzcore_isolation.capabilities", "vzcore_isolation.rootfs")


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="isolation",
                      summary="own pid/mount/uts/ipc/net/cgroup namespaces, /proc, /sys, /dev, "
                              "capabilities",
                      child_modules=CHILD_MODULES)


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
def vz_setup_host(ct: Container, run: Run, pid: int) -> None:
    """Map the CT's IDs 0..65535 to its host range (we write as the privileged parent, so
    setgroups need not be denied)."""
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
    from vzcore.lifecycle.console import CONSOLE_OPTION
    from vzcore_isolation import rootfs

    rootfs.build(run.root, ct.root_owner, console=run.options.get(CONSOLE_OPTION))


@hookimpl
def vz_switch_root(ct: Container, run: Run) -> bool:
    from vzcore.linux import mounts

    mounts.pivot_to_cwd()  # rootfs.build left the working directory at the CT's root
    return True


def _kept(ct: Container) -> frozenset[int]:
    from vzcore_isolation import capabilities

    return capabilities.kept(ct.get("CAPABILITY"), privileged=ct.idmap is None)


@hookimpl
def vz_finalize_child(ct: Container, run: Run) -> None:
    from vzcore.linux import caps, libc

    _become_ct_root(ct)
    libc.sethostname(ct.hostname or DEFAULT_HOSTNAME)
    caps.limit_to(_kept(ct))


@hookimpl
def vz_enter(ct: Container, run: Run) -> None:
    from vzcore.linux import caps

    _become_ct_root(ct)
    caps.limit_to(_kept(ct))


@hookimpl
def vz_stop(ct: Container, run: Run) -> None:
    """Run ``halt`` inside, as vzctl does; if the CT has none, send init SIGPWR (LXC's
    default halt signal, which sysvinit and systemd both treat as "power off")."""
    from vzcore.lifecycle.enter import run_in_ct
    from vzcore.linux.procfs import kill

    if run_in_ct(run, HALT) != 0 and run.state.init is not None:
        kill(run.state.init, signal.SIGPWR)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    if run is not None and "HOSTNAME" in changes:
        from vzcore.linux import libc, namespaces

        name = changes["HOSTNAME"].new or DEFAULT_HOSTNAME
        namespaces.call_in(run.init_pid, ["uts"], lambda: libc.sethostname(name))
