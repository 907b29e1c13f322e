"""Hook implementations of the dists plugin (subsystem ``dists``): OpenVZ's distribution
scripts (``SET_HOSTNAME``, ``ADD_IP``/``DEL_IP``, ``SET_DNS``, ``SET_USERPASS``) as one
Python module per distribution with one function per action.

The CT's files are written at every start (``vz_pre_start``, after the network plugin
put its devices on record) and at once when ``vzctl set`` changes a running CT
(``vz_apply``); ``--userpasswd`` also works on a stopped CT, whose root ``set`` mounts
for it, and is never written to the config.  Nothing is made on the host, so there is
no record.
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

USERPASSWD = "USERPASSWD"
FILE_KEYS = ("HOSTNAME", "IP_ADDRESS", "NETIF", "NAMESERVER", "SEARCHDOMAIN")


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="dists",
                      summary="distribution actions: host name, addresses, name servers and "
                              "passwords in the CT's own files (Debian, busybox)")


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore_dists import passwd

    yield Parameter(name="userpasswd", key=USERPASSWD, type=passwd.UserPassType(),
                    multiple=True, merge=passwd.merge, live=True, saved=False,
                    help="set the password of a user of the CT (hashed into its "
                         "/etc/shadow, never saved; a stopped CT is mounted for it)")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """A ``--userpasswd`` user must exist in the CT: checked now when its root is
    reachable (running or mounted), else again by the action before it writes.  A
    password is never kept in a config: one written there by hand is refused."""
    from vzcore.errors import InvalidValue

    if ct.get(USERPASSWD) is not None:
        raise InvalidValue(f"CT {ct.ctid}: {USERPASSWD} in its config: passwords are never kept "
                           f"in a config; remove that line and use 'vzctl set {ct.ctid} "
                           "--userpasswd USER:PASSWORD'")
    if verb != "set" or USERPASSWD not in changes:
        return
    from vzcore.linux.mounts import is_mount_point
    from vzcore_dists import actions, passwd

    try:
        pairs = passwd.parse_text(changes[USERPASSWD].new)
    except ValueError as exc:
        raise InvalidValue(f"CT {ct.ctid}: invalid value for --userpasswd: {exc}") from None
    if not is_mount_point(ct.root):
        return
    with actions.open_tree(ct) as tree:
        actions.dist_of(ct, tree).check_userpass(tree, pairs)


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    """Write the CT's host name, address and DNS files as its config says."""
    if not any(ct.get(key) for key in FILE_KEYS):
        return
    from vzcore_dists import actions

    actions.write(ct, FILE_KEYS)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    """A running CT's files follow the change at once; passwords also on a stopped CT."""
    keys = [key for key in FILE_KEYS if key in changes]
    if run is not None and keys:
        from vzcore_dists import actions

        actions.write(ct, keys, changes)
    if USERPASSWD in changes:
        from vzcore_dists import actions, passwd

        pairs = passwd.parse_text(changes[USERPASSWD].new)
        with actions.open_tree(ct) as tree:
            actions.dist_of(ct, tree).set_userpass(tree, pairs)
