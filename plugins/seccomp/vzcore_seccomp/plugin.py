"""Hook implementations of the seccomp plugin: the filter on init and every joined process.

The filter modules are :data:`CHILD_MODULES`, which the engine imports before the CT's
init forks and before a process joins the CT: ``vz_finalize_child`` and ``vz_enter`` run
where the host's files (Python modules not yet imported) are out of reach.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Parameter
    from vzcore.runtime import Run

CAP_SYS_ADMIN = 21
CHILD_MODULES = ("vzcore.linux.caps", "vzcore.linux.seccomp", "vzcore.linux.devnodes",
                 "vzcore_seccomp.policy")
MODES = ("default", "off")


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="security", summary="seccomp filter denying dangerous system calls",
                      child_modules=CHILD_MODULES)


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore.values import Choice

    yield Parameter(name="seccomp", key="SECCOMP", type=Choice(MODES),
                    on_create=True,
                    help="system call filter: default (deny module loading, kexec, bpf, "
                         "keyrings, ...; in a privileged CT also mount, umount and new "
                         "mount namespaces; see docs/security.md) or off")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """A saved ``SECCOMP`` that names no mode is refused: guessing one would either drop
    the filter or keep it against the admin's intent."""
    value = changes["SECCOMP"].new if "SECCOMP" in changes else ct.get("SECCOMP")
    if value and value not in MODES:
        from vzcore.errors import InvalidValue

        raise InvalidValue(f"CT {ct.ctid}: SECCOMP={value!r} is neither 'default' "
                           f"nor 'off'; fix it with 'vzctl set {ct.ctid} --seccomp "
                           "default --save'")


def _apply(ct: Container) -> None:
    """Install the CT's filter in the calling process (the last step before exec); a
    privileged CT (no user namespace) gets the mount table and more refused as well."""
    from vzcore.linux import caps, seccomp
    from vzcore_seccomp import policy

    if (ct.get("SECCOMP") or "default") == "off":
        return
    if not caps.in_effective_set(CAP_SYS_ADMIN):
        caps.set_no_new_privs()  # what the kernel asks of a process without CAP_SYS_ADMIN
    privileged = ct.idmap is None
    # the second-level quota (disk plugin): the CT's root sets its users' quotas
    ugid_quota = privileged and (ct.get("QUOTAUGIDLIMIT") or "0") != "0"
    # a simfs CT's limits (disk plugin): its tree's project quota, which only a process in
    # the host's user namespace can leave by changing its files' project ID
    project_quota = privileged and ct.layout == "simfs" and \
        bool(ct.get("DISKSPACE") or ct.get("DISKINODES"))
    seccomp.install(seccomp.deny_filter(policy.denied(privileged, ugid_quota),
                                        rules=policy.rules(privileged, ugid_quota,
                                                           project_quota)))


@hookimpl
def vz_finalize_child(ct: Container, run: Run) -> None:
    _apply(ct)


@hookimpl
def vz_enter(ct: Container, run: Run) -> None:
    _apply(ct)
