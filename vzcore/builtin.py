"""The core's own plugin: parameters and vzlist fields that belong to no subsystem.

It is registered first and cannot be disabled.  Its ``numproc`` field (a count of the
CT's tasks from its cgroups) and ``ip`` field (``IP_ADDRESS`` from the config) are
fallbacks that the beancounters and network plugins replace with fields of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from vzcore.hookspecs import hookimpl
from vzcore.linux.procfs import uptime_of
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Field, Parameter
    from vzcore.runtime import Run


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="core", summary="CT identity, paths, boot and stop settings")


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    # Declarations are imported here, not at module level: only create, set and docs
    # need them, and every command loads this module.
    from vzcore.params import Parameter
    from vzcore.values import HOSTNAME, Integer, Text, YesNo

    path = Text(pattern=r"/.*", explanation="an absolute path is required", metavar="PATH")
    yield Parameter(name="hostname", key="HOSTNAME", type=HOSTNAME, live=True, on_create=True,
                    help="the CT's host name")
    yield Parameter(name="description", key="DESCRIPTION", type=Text(), live=True,
                    on_create=True, help="free text describing the CT")
    from vzcore.container import NAME_EXPLANATION, NAME_PATTERN

    yield Parameter(name="name", key="NAME", live=True, on_create=True,
                    type=Text(pattern=f"|{NAME_PATTERN}", explanation=NAME_EXPLANATION,
                              metavar="NAME"),
                    help="a unique name usable wherever the CT ID is (needs --save; '' "
                         "removes it)")
    yield Parameter(name="onboot", key="ONBOOT", type=YesNo(), live=True,
                    help="start the CT when the host boots ('vzctl boot-all', the vz service)")
    yield Parameter(name="bootorder", key="BOOTORDER", type=Integer(0, 2**31 - 1), live=True,
                    help="order of 'vzctl boot-all': higher starts earlier; unset: last")
    yield Parameter(name="disabled", key="DISABLED", type=YesNo(), live=True,
                    help="refuse to start the CT (start --force overrides)")
    yield Parameter(name="stop-timeout", key="STOP_TIMEOUT", type=Integer(0, 86400), live=True,
                    aliases=("stop_timeout",),
                    help="seconds 'vzctl stop' waits for init before killing (0: 120)")
    yield Parameter(name="wait-timeout", key="WAIT_TIMEOUT", type=Integer(0, 86400), live=True,
                    aliases=("wait_timeout",),
                    help="seconds 'vzctl start --wait' waits for init to say it booted "
                         "(0: 300)")
    yield Parameter(name="layout", key="VE_LAYOUT", type=Text(pattern=r"[a-z][a-z0-9_-]*",
                    explanation="a layout name such as simfs", metavar="NAME"),
                    aliases=("ve_layout", "velayout"), on_create=True, on_set=False,
                    help="how the private area is stored (simfs: a directory)")
    ids = Integer(0, 2**32 - 65537)
    yield Parameter(name="local_uid", key="LOCAL_UID", type=ids, on_create=True, on_set=False,
                    aliases=("local-uid",),
                    help="host UID of the CT's root: its IDs 0..65535 map to LOCAL_UID.. in a "
                         "user namespace; 0 = privileged CT (no user namespace; only with "
                         "ALLOW_PRIVILEGED=yes in vz.conf)")
    yield Parameter(name="local_gid", key="LOCAL_GID", type=ids, on_create=True, on_set=False,
                    aliases=("local-gid",),
                    help="host GID of the CT's root group (as --local_uid)")
    yield Parameter(name="private", key="VE_PRIVATE", type=path, on_create=True, on_set=False,
                    help="where the CT's files live ($VEID is replaced by the CT ID); below the "
                         "fixed part of vz.conf's VE_PRIVATE (/vz/private)")
    yield Parameter(name="root", key="VE_ROOT", type=path, on_create=True, on_set=False,
                    help="where the CT's root is mounted ($VEID is replaced by the CT ID); below "
                         "the fixed part of vz.conf's VE_ROOT (/vz/root)")


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field

    yield Field(name="ctid", header="CTID", width=10, help="CT ID")
    yield Field(name="name", header="NAME", width=-32, help="CT name (vzctl set --name)")
    yield Field(name="smart_name", header="SMARTNAME", width=10,
                help="the CT's name if it has one, else its CT ID")
    yield Field(name="status", header="STATUS", width=-9, help="running, mounted or stopped")
    yield Field(name="hostname", header="HOSTNAME", width=-32, help="host name")
    yield Field(name="description", header="DESCRIPTION", width=-32, help="description")
    yield Field(name="ostemplate", header="OSTEMPLATE", width=-24, help="OS template")
    yield Field(name="private", header="PRIVATE", width=-32, help="private area path")
    yield Field(name="root", header="ROOT", width=-32, help="root mount point")
    yield Field(name="layout", header="LAYOUT", width=-6, help="private area layout")
    yield Field(name="onboot", header="ONBOOT", width=-6, kind="bool", help="start at host boot")
    yield Field(name="bootorder", header="BOOTORDER", width=9, help="boot order (higher first)")
    yield Field(name="disabled", header="DISABL", width=-6, kind="bool", help="start disabled")
    yield Field(name="ip", header="IP_ADDR", width=-15, kind="list",
                help="IP addresses (IP_ADDRESS in the config)")
    yield Field(name="numproc", header="NPROC", width=10, stopped=False, kind="ubc",
                help="tasks (processes and threads) in the CT")
    yield Field(name="uptime", header="UPTIME", width=15, stopped=False, kind="duration",
                help="time since the CT's init started")


def _check_name_unique(ct: Container, changes: ChangeSet) -> None:
    """A new ``NAME`` must not be another CT's: names are looked up in every config."""
    change = changes.get("NAME")
    if change is None or not change.new:
        return
    from vzcore.container import names_in
    from vzcore.errors import InvalidValue
    conf_dir = ct.paths.conf_dir
    others = [c for c in _conf_ctids(ct.paths) if c != ct.ctid]
    for other, name in names_in(conf_dir, others).items():
        if name == change.new:
            raise InvalidValue(f"CT {ct.ctid}: the name {change.new!r} is already CT {other}'s; "
                               f"choose another, or free it with 'vzctl set {other} --name "
                               f"\"\" --save'")


def _conf_ctids(paths: Any) -> list[int]:
    from vzcore.container import ctid_of_file

    try:
        names = [p.name for p in paths.conf_dir.iterdir()]
    except FileNotFoundError:
        return []
    return sorted(c for c in (ctid_of_file(n, ".conf") for n in names) if c is not None)


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """A new name must be unique.  A host name that came with the config file (not through
    ``--hostname``) is checked before a start sets it in the CT and writes it into the CT's
    files."""
    if verb in ("set", "create") and changes and "NAME" in changes:
        _check_name_unique(ct, changes)
    if verb != "start" or ct.is_host:
        return
    text = ct.get("HOSTNAME")
    if not text:
        return
    from vzcore.errors import InvalidValue
    from vzcore.values import HOSTNAME

    try:
        HOSTNAME.parse(text)
    except ValueError as exc:
        raise InvalidValue(f"CT {ct.ctid}: HOSTNAME in its config: {exc}; fix it with "
                           f"'vzctl set {ct.ctid} --hostname NAME --save'") from None


def _yes_no(value: str | None) -> bool | None:
    return None if value is None else value.lower() == "yes"


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _area(ct: Container, key: str) -> str | None:
    """A CT's area path for vzlist; ``None`` (shown as -) for an unusable one, so that one
    damaged config does not hide the CT's other fields."""
    text = ct.area_text(key)
    return str(ct.paths.host(text)) if text.startswith("/") else None


@hookimpl
def vz_collect(ct: Container, run: Run | None) -> Mapping[str, Any]:
    values: dict[str, Any] = {
        "ctid": ct.ctid,
        "name": ct.config.get("NAME") or None,
        "smart_name": ct.config.get("NAME") or ct.ctid,
        "hostname": ct.get("HOSTNAME"),
        "description": ct.get("DESCRIPTION"),
        "ostemplate": ct.get("OSTEMPLATE"),
        "private": _area(ct, "VE_PRIVATE"),
        "root": _area(ct, "VE_ROOT"),
        "layout": ct.layout,
        "onboot": _yes_no(ct.get("ONBOOT")),
        "bootorder": _number(ct.get("BOOTORDER")),
        "disabled": bool(_yes_no(ct.get("DISABLED"))),
        "ip": (ct.get("IP_ADDRESS") or "").split(),
    }
    if run is not None and run.state.init is not None:
        values["numproc"] = {"held": run.cgroups.task_count(), "maxheld": None, "barrier": None,
                             "limit": None, "failcnt": None}
        values["uptime"] = round(uptime_of(run.state.init), 2)
    return values
