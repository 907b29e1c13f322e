"""Hook implementations of the devices plugin (subsystem ``devices``).

Parameters: ``--devnodes`` (DEVNODES), ``--devices`` (DEVICES), ``--netdev_add`` and
``--netdev_del`` (NETDEV), all live on a running CT.  vzlist fields: ``devnodes``,
``devices``, ``netdev``.  Every CT gets the default allow list
(:data:`vzcore_devices.policy.DEFAULT`) plus its grants, on the v1 devices controller or as
a BPF device program on its cgroup2 group; docs/devices.md explains it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vzcore import hookimpl
from vzcore.plugin import PluginInfo
from vzcore_devices.record import DevicesRecord

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Field, Parameter
    from vzcore.runtime import Run
    from vzcore_devices.policy import Rule
    from vzcore_devices.record import Netdev, Node

KEYS = ("DEVNODES", "DEVICES", "NETDEV")
OPTION = {"DEVNODES": "--devnodes", "DEVICES": "--devices", "NETDEV": "--netdev_add"}


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="devices",
                      summary="device allow list, --devnodes/--devices grants (devices cgroup "
                              "or BPF device program), host interfaces (--netdev_add)",
                      child_modules=("vzcore_devices.nodes",), record=DevicesRecord)


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore_devices import grammar

    yield Parameter(name="devnodes", key="DEVNODES", type=grammar.DevnodeType(), multiple=True,
                    merge=grammar.merge_devnodes, live=True, on_create=True,
                    help="give the CT the host node /dev/NAME (loop3, net/tun) with access "
                         "r, w, rw or q; none revokes it and removes the node")
    yield Parameter(name="devices", key="DEVICES", type=grammar.DeviceType(), multiple=True,
                    merge=grammar.merge_devices, live=True, on_create=True,
                    help="allow access to a device by number (MINOR all: every minor), "
                         "without making a node; none revokes it")
    yield Parameter(name="netdev_add", key="NETDEV", type=grammar.IfnameType(), multiple=True,
                    merge=grammar.merge_netdev_add, live=True, on_create=True,
                    help="move the host network interface NAME into the CT (back at stop)")
    yield Parameter(name="netdev_del", key="NETDEV", type=grammar.IfnameType(), multiple=True,
                    merge=grammar.merge_netdev_del, live=True,
                    help="give the interface NAME back to the host")


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field

    yield Field(name="devnodes", header="DEVNODES", width=-20, kind="list",
                help="host device nodes granted (NAME:ACCESS)")
    yield Field(name="devices", header="DEVICES", width=-20, kind="list",
                help="devices granted by number (TYPE:MAJOR:MINOR:ACCESS)")
    yield Field(name="netdev", header="NETDEV", width=-12, kind="list",
                help="host network interfaces given to the CT")


# -- what the config asks for -----------------------------------------------------------------


@attrs.frozen
class Wanted:
    """A CT's device settings resolved against the host: its nodes, rules, interfaces."""

    nodes: tuple[Node, ...]
    rules: tuple[Rule, ...]
    netdevs: tuple[str, ...]


def _text(ct: Container, changes: ChangeSet | None, key: str) -> str | None:
    if changes is not None and key in changes:
        return changes[key].new
    return ct.get(key)


def _wanted(ct: Container, changes: ChangeSet | None = None) -> Wanted:
    """Parse DEVNODES, DEVICES and NETDEV and look the nodes up on the host; raise
    :class:`InvalidValue` naming the CT, the parameter and the fix."""
    from vzcore.errors import InvalidValue
    from vzcore_devices import grammar, nodes, policy

    parsed: dict[str, Any] = {}
    for key, parse in (("DEVNODES", grammar.devnodes_of), ("DEVICES", grammar.devices_of),
                       ("NETDEV", grammar.netdevs_of)):
        try:
            parsed[key] = parse(_text(ct, changes, key))
        except ValueError as exc:
            option = OPTION[key]
            raise InvalidValue(f"CT {ct.ctid}: {key} ({option}): {exc}; fix it with 'vzctl set "
                               f"{ct.ctid} {option} ... --save' or in {ct.config.path}") from None
    found: list[Node] = []
    for node in parsed["DEVNODES"]:
        try:
            found.append(nodes.lookup(node.name, node.access))
        except LookupError as exc:
            raise InvalidValue(f"CT {ct.ctid}: --devnodes {node.to_conf()}: {exc}; give an "
                               f"existing node, or revoke it with 'vzctl set {ct.ctid} "
                               f"--devnodes {node.name}:none --save'") from None
    rules = [*policy.DEFAULT,
             *(policy.grant(n.kind, n.major, n.minor, n.access) for n in found),
             *(policy.grant(d.kind, d.major, d.minor, d.access) for d in parsed["DEVICES"])]
    return Wanted(tuple(found), tuple(policy.merged(rules)), tuple(parsed["NETDEV"]))


def _holder(ct: Container) -> Path:
    return ct.paths.run_dir / "devices" / f"{ct.ctid}.netns"


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """Refuse malformed grants, host nodes that do not exist and interfaces the host does
    not have, before anything changes."""
    from vzcore.errors import InvalidValue
    from vzcore_devices import grammar, netdev

    if ct.is_host or (verb != "start" and not any(key in changes for key in KEYS)):
        return
    wanted = _wanted(ct, changes)
    before = set(grammar.netdevs_of(ct.get("NETDEV"))) if verb != "start" else set()
    for name in wanted.netdevs:
        if name not in before and not netdev.exists(name):
            raise InvalidValue(f"CT {ct.ctid}: --netdev_add {name}: the host has no network "
                               f"interface {name} (see 'ip link'); give an existing one, or "
                               f"remove it with 'vzctl set {ct.ctid} --netdev_del {name} --save'")


# -- start and stop -------------------------------------------------------------------------


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    """Record and enforce the CT's device rules on its fresh group (nothing runs in it)."""
    from vzcore_devices import enforce

    wanted = _wanted(ct)
    record = DevicesRecord(rules=tuple(r.text() for r in wanted.rules), nodes=wanted.nodes)
    run.record = record
    program = enforce.apply(run.cgroups, None, wanted.rules, None)
    if program is not None:
        run.amend(attrs.evolve(record, program=program))  # undoes nothing: dies with the group


@hookimpl
def vz_setup_host(ct: Container, run: Run, pid: int) -> None:
    """Move the CT's host interfaces into its network namespace, holding the namespace."""
    from vzcore_devices import grammar, netdev

    names = grammar.netdevs_of(ct.get("NETDEV"))
    if not names:
        return
    moving = tuple(netdev.describe(name) for name in names)
    holder = _holder(ct)
    run.record = attrs.evolve(run.record or DevicesRecord(), netdevs=moving,
                              netns=str(holder))  # record, then make
    netdev.hold(pid, holder)
    for one in moving:
        netdev.move_in(one, str(holder))


@hookimpl
def vz_setup_child(ct: Container, run: Run) -> None:
    """Make the granted nodes in the CT's new /dev (after the isolation plugin built it)."""
    from vzcore_devices import nodes

    record: DevicesRecord | None = run.record
    if record is not None and record.nodes:
        nodes.make(run.root, record.nodes, ct.root_owner)


@hookimpl
def vz_post_stop(ct: Container, run: Run) -> None:
    """Move the CT's host interfaces back to the host and let its namespace go.  (The rules
    and the program go with the CT's group, the nodes with its mount namespace.)"""
    record: DevicesRecord | None = run.record
    if record is None:
        return
    _return_netdevs(ct, record, record.netdevs)
    if record.netns is not None:
        from vzcore_devices import netdev

        netdev.release(Path(record.netns))


def _return_netdevs(ct: Container, record: DevicesRecord, which: Iterable[Netdev]) -> None:
    from vzcore.errors import VzError
    from vzcore_devices import netdev

    if not netdev.held(record.netns):
        return  # nothing holds the namespace: the kernel dealt with its interfaces
    assert record.netns is not None
    failed = []
    for one in which:
        try:
            if not netdev.move_out(one, record.netns) and not netdev.exists(one.name):
                # (on the host already: a start killed before it was moved)
                # renamed or deleted inside: retrying cannot find it, so do not fail the stop
                print(f"warning: CT {ct.ctid}: interface {one.name} is no longer in the CT "
                      "under that name; it leaves with the CT's network namespace (a "
                      "physical one to the initial namespace, a virtual one destroyed)",
                      file=sys.stderr)
        except VzError as exc:
            failed.append(f"{one.name}: {exc}")
    if failed:
        raise VzError(f"CT {ct.ctid}: could not give interfaces back to the host: "
                      f"{'; '.join(failed)}")


# -- live changes ---------------------------------------------------------------------------


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    """Change a running CT's grants at once: the rules in one step that never allows more
    than the old or the new set, then its nodes and interfaces."""
    from vzcore_devices import enforce, netdev, nodes
    from vzcore_devices.policy import Rule

    if ct.is_host or run is None or not any(key in changes for key in KEYS):
        return
    record: DevicesRecord = run.record or DevicesRecord()
    wanted = _wanted(ct, changes)
    root = f"/proc/{run.init_pid}/root"
    old_nodes = {n.name: n for n in record.nodes}
    new_nodes = {n.name: n for n in wanted.nodes}
    # a node whose access alone changes stays: the rules decide what it may do
    gone = [n for name, n in old_nodes.items() if not _same_node(new_nodes.get(name), n)]
    made = [n for name, n in new_nodes.items() if not _same_node(old_nodes.get(name), n)]
    old_netdevs = {n.name: n for n in record.netdevs}
    leaving = [n for name, n in old_netdevs.items() if name not in wanted.netdevs]
    arriving = [netdev.describe(name) for name in wanted.netdevs if name not in old_netdevs]
    staying = [n for n in record.netdevs if n.name in wanted.netdevs]
    holder = record.netns
    if arriving and holder is None:
        holder = str(_holder(ct))
    updated = attrs.evolve(record, rules=tuple(r.text() for r in wanted.rules),
                           nodes=wanted.nodes, netdevs=(*staying, *arriving, *leaving),
                           netns=holder)
    run.record = updated  # record before make; leaving interfaces stay named until back
    old_rules = [Rule.parse(text) for text in record.rules] if record.rules else None
    program = enforce.apply(run.cgroups, old_rules, wanted.rules, record.program)
    if gone:
        nodes.remove(root, gone)
    if made:
        nodes.make(root, made, ct.root_owner)
    if leaving:
        _return_netdevs(ct, updated, leaving)
    if arriving:
        assert holder is not None
        netdev.hold(run.init_pid, Path(holder))
        for one in arriving:
            netdev.move_in(one, holder)
    run.record = attrs.evolve(updated, program=program, netdevs=(*staying, *arriving))


def _same_node(a: Node | None, b: Node) -> bool:
    return a is not None and attrs.evolve(a, access=b.access) == b


@hookimpl
def vz_collect(ct: Container, run: Run | None) -> Mapping[str, Any]:
    """The CT's grants as its config holds them."""
    from vzcore_devices import grammar

    values: dict[str, Any] = {}
    for field, key, parse in (("devnodes", "DEVNODES", grammar.devnodes_of),
                              ("devices", "DEVICES", grammar.devices_of),
                              ("netdev", "NETDEV", grammar.netdevs_of)):
        try:
            items = parse(ct.get(key))
        except ValueError:
            continue  # malformed: shown as '-'; start and set say what is wrong
        values[field] = [i if isinstance(i, str) else i.to_conf() for i in items]
    return values
