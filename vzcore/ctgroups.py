"""A CT's own cgroups: where they go, which processes in them are the CT's, and a running
CT found from its groups when its state file is lost.

Group names.  A CT's group is ``CGROUP_PARENT/CTID`` for the installation at ``/`` and
``CGROUP_PARENT/CTID-TAG`` for one relocated by ``VZ_ROOT``, where ``TAG`` is derived
from the prefix's real path: two installations that share a ``CGROUP_PARENT`` never
share a group, so neither takes the other's CT for its own, reuses its group or kills its
processes.

Ownership.  A process belongs to the CT when it is in the CT's PID namespace (recorded
with init at start) or one nested in it, or is about to fork into it
(``pid_for_children``: a ``vzctl exec`` joining).  The CT's init found without a state
file must also have the CT's root as its root.  Nothing else in a CT's groups is ever
killed, thawed or reused: a leftover group that is frozen or holds other processes is
refused, naming the group and the fix.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from vzcore.container import Container, ctid_of_file
from vzcore.errors import VzError
from vzcore.linux import cgroups as cg
from vzcore.linux.procfs import (
    ProcessId,
    command_name,
    namespace,
    namespace_pids,
    pid_namespaces,
)
from vzcore.paths import Paths
from vzcore.runtime import RUNNING, State

DEFAULT_CGROUP_PARENT = "vz"
HELPER_GRACE = 5.0
"""Seconds a killed start's helper processes (which die with vzctl or at end of file on
their pipe) get to leave the CT's groups before they count as strangers."""


def group_name(paths: Paths, ctid: int) -> str:
    """The name of CT ``ctid``'s group below ``CGROUP_PARENT``, unique to the installation."""
    prefix = os.path.realpath(paths.prefix)
    if prefix == "/":
        return str(ctid)
    import hashlib  # only here: OpenSSL's start-up (2-3 ms) is not every vzctl's at "/"

    return f"{ctid}-{hashlib.sha256(prefix.encode()).hexdigest()[:8]}"


def ctids_with_groups(paths: Paths, parent: str | None) -> set[int]:
    """The CTs of this installation that have a group below ``parent`` (the global
    ``CGROUP_PARENT``), read from one hierarchy: one directory listing."""
    try:
        found = _hierarchies()
        directory = cg.parent_dirs(parent or DEFAULT_CGROUP_PARENT, found[:1])[0]
        names = [entry.name for entry in os.scandir(directory) if entry.is_dir()]
    except (OSError, VzError, IndexError):
        return set()
    suffix = group_name(paths, 0)[1:]  # "" at /, else "-TAG"
    ctids = (ctid_of_file(name, suffix) for name in names)
    return {c for c in ctids if c is not None}


@functools.cache
def _hierarchies() -> tuple[cg.Hierarchy, ...]:
    """The caller's hierarchies; read once per process (vzlist asks for every CT)."""
    return tuple(cg.hierarchies())


def plan(ct: Container) -> cg.CgroupSet:
    """Where CT ``ct``'s groups go in every hierarchy."""
    parent = ct.get("CGROUP_PARENT") or DEFAULT_CGROUP_PARENT
    return cg.CgroupSet.plan(parent, group_name(ct.paths, ct.ctid), _hierarchies())


DAEMON_GROUP_PREFIX = "daemon-"
"""Groups below ``CGROUP_PARENT`` that hold a shared daemon, not a CT (:func:`daemon_groups`)."""


def daemon_groups(ct: Container, name: str) -> cg.CgroupSet:
    """Where the installation's shared daemon ``name`` (``lxcfs``, ``view``) runs: its own
    group ``daemon-NAME`` (``daemon-NAME-TAG`` for a relocated installation) below vz.conf's
    ``CGROUP_PARENT``, beside the CTs' groups.  Out of the calling vzctl's session group,
    so a logout does not kill it; in no CT's group, so no CT's stop kills it."""
    parent = ct.global_config.get("CGROUP_PARENT") or DEFAULT_CGROUP_PARENT
    suffix = group_name(ct.paths, 0)[1:]  # "" at /, else "-TAG"
    return cg.CgroupSet.plan(parent, f"{DAEMON_GROUP_PREFIX}{name}{suffix}", _hierarchies())


class OwnedBy:
    """"Is this process the CT's?" for the CT whose PID namespace is ``pidns``: True for a
    process in it or in a namespace nested in it, one forking into it (a joining ``vzctl
    exec``), or one already gone (it needs no decision)."""

    def __init__(self, pidns: str | None) -> None:
        self.pidns = pidns

    def __call__(self, pid: int) -> bool:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        if self.pidns is None:
            return False
        # A process of a PID namespace nested in the CT's (a container in the CT) is the
        # CT's too: it dies with the CT's init.
        return self.pidns in (*pid_namespaces(pid), namespace(pid, "pid_for_children"))


def describe(pids: set[int]) -> str:
    """``1234 (sleep), 1240 (bash)`` for a message."""
    return ", ".join(f"{pid} ({command_name(pid)})" for pid in sorted(pids))


def _where(groups: cg.CgroupSet, pids: set[int]) -> str:
    """The first of the CT's groups that holds one of ``pids`` (for a message)."""
    for d in groups.dirs:
        try:
            held = set(map(int, cg.read_file(d.file("cgroup.procs")).split()))
        except VzError:
            continue
        if held & pids:
            return str(d.directory)
    return str(groups.dirs[0].directory)


def refuse_frozen(ct: Container, groups: cg.CgroupSet) -> None:
    """Raise when the CT's groups (or an ancestor) are frozen: a process put there would
    stop at once and the command would wait for it forever."""
    frozen = groups.frozen()
    if frozen:
        group = frozen[0]
        thaw = ("echo THAWED > {}/freezer.state" if (group / "freezer.state").exists()
                else "echo 0 > {}/cgroup.freeze").format(group)
        raise VzError(f"CT {ct.ctid}: cgroup {group} is frozen; thaw it ({thaw}) or, if "
                      f"nothing in it is needed, remove it, then run the command again")


def check_leftover(ct: Container, groups: cg.CgroupSet) -> None:
    """Before a start uses groups that no state file records: refuse them when they hold
    processes (none is the CT's: its init would have been found) or are frozen."""
    strangers = groups.pids()
    if strangers:
        where = _where(groups, strangers)
        raise VzError(
            f"CT {ct.ctid}: its cgroup {where} exists already and holds "
            f"processes that are not the CT's: {describe(strangers)}; move them out "
            "(write their PIDs to another group's cgroup.procs) or end them, then start again; "
            "if another installation (a vzctl with another VZ_ROOT or an older one) uses the "
            "same CGROUP_PARENT, give each installation its own CGROUP_PARENT in vz.conf")
    refuse_frozen(ct, groups)


def kill_processes(ct: Container, state: State) -> None:
    """Kill the CT's processes in its recorded groups, thawing them first when every
    process there is the CT's; raise naming any other process, which is left alone."""
    groups = state.cgroups
    if groups is None:
        return
    owned = OwnedBy(state.pid_namespace)
    strangers = {pid for pid in groups.pids() if not owned(pid)}
    if strangers:
        strangers = _wait_gone(strangers, HELPER_GRACE)
    if not strangers:
        groups.thaw()
    strangers |= groups.kill(only=owned)
    if strangers:
        where = _where(groups, strangers)
        raise VzError(
            f"CT {ct.ctid}: cgroup {where} holds processes that are not the CT's: "
            f"{describe(strangers)}; they were left alone: move them out (write their PIDs "
            "to another group's cgroup.procs), then run the command again")


def thaw_if_owned(state: State) -> bool:
    """Thaw the CT's own frozen groups when every process in them is the CT's (a CT
    frozen by someone cannot shut down); True when that left them thawed (a frozen
    ancestor is not the CT's to thaw)."""
    groups = state.cgroups
    if groups is None or not groups.frozen():
        return False
    owned = OwnedBy(state.pid_namespace)
    if not all(owned(pid) for pid in groups.pids()):
        return False
    groups.thaw()
    return not groups.frozen()


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Those of ``pids`` still running after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = {pid for pid in pids if os.path.exists(f"/proc/{pid}")}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def find_init(ct: Container, groups: cg.CgroupSet) -> ProcessId | None:
    """The CT's init among the processes of its groups: PID 1 of a PID namespace of its
    own whose root is the CT's root (or its private area, which a simfs root shows)."""
    candidates = []
    for pid in groups.pids():
        chain = namespace_pids(pid)
        if len(chain) >= 2 and chain[-1] == 1:
            candidates.append((len(chain), pid))
    for _depth, pid in sorted(candidates):  # the outermost: an init nested in the CT is not it
        if _same_file(f"/proc/{pid}/root", ct.root) or _same_file(f"/proc/{pid}/root", ct.private):
            return ProcessId.of(pid)
    return None


def recover(ct: Container, state_file: Path) -> State | None:
    """The state of a CT that runs without a state file (lost or removed), rebuilt from
    its groups and its init; ``None`` when its groups hold no init of the CT."""
    try:
        groups = plan(ct)
    except (OSError, VzError):
        return None
    if not any(d.directory.is_dir() for d in groups.dirs):
        return None
    try:
        init = find_init(ct, groups)
    except VzError:  # paths the config cannot give: no CT of ours was started there
        return None
    if init is None:
        return None
    return State(path=state_file, ctid=ct.ctid, phase=RUNNING, init=init,
                 pidns=namespace(init.pid, "pid"), cgroups=groups, mounted_by_start=True,
                 recovered=True)
