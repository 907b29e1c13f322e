"""Control groups, v1 and v2 behind one API, detected at run time.

A host has either cgroup v1 hierarchies (one per controller or controller set, mounted at
``/sys/fs/cgroup/<controller>``, possibly beside a cgroup2 mount: "hybrid") or a single
cgroup v2 hierarchy.  :func:`hierarchies` reads ``/proc/self/cgroup`` and mountinfo to
find every hierarchy and the caller's own group in it; :class:`CgroupSet` is one CT's
group in each hierarchy: created below a parent, joined by PID, read, written, killed and
removed.  Controllers are named the v1 way (``memory``, ``cpu``, ``pids``); on v2 the same
name finds the unified group, so callers ask :attr:`CgroupSet.version` only to choose file
names (``memory.limit_in_bytes`` or ``memory.max``).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from vzcore.errors import KernelError, VzError
from vzcore.linux.mounts import mountinfo

UNIFIED = "unified"
UNLIMITED = 2**63 - 1
"""What :meth:`CgroupSet.read_int` returns for ``max`` (and v1's page-rounded LONG_MAX)."""
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids", "hugetlb", "misc")


@attrs.frozen
class Hierarchy:
    """One mounted cgroup hierarchy and the caller's own group in it.

    :ivar key: ``"memory"``, ``"cpu,cpuacct"``, ``"name=systemd"`` or ``"unified"``.
    :ivar own: the caller's group, as ``/proc/self/cgroup`` names it (``/user.slice/x``).
    """

    key: str
    version: int
    mount_point: str
    mount_root: str
    controllers: frozenset[str]
    own: str

    def directory(self, group: str) -> Path:
        """The directory of ``group`` (a path from this hierarchy's root)."""
        if self.mount_root == "/":
            return Path(self.mount_point, group.lstrip("/"))
        relative = os.path.relpath(group, self.mount_root)
        if relative.startswith(".."):
            raise VzError(f"cgroup {group} is outside the mounted part of the {self.key} hierarchy")
        return Path(self.mount_point, "" if relative == "." else relative)


def hierarchies(pid: int | str = "self") -> list[Hierarchy]:
    """Every cgroup hierarchy ``pid`` is in that is mounted in the caller's namespace."""
    own: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            hid, names, path = line.rstrip("\n").split(":", 2)
            own[UNIFIED if hid == "0" and not names else _key(names.split(","))] = path
    found: dict[str, Hierarchy] = {}
    for entry in mountinfo():
        if entry.fstype == "cgroup2":
            key, version = UNIFIED, 2
            controllers = _v2_controllers(entry.mount_point)
        elif entry.fstype == "cgroup":
            options = [o for o in entry.super_options.split(",")
                       if o in _V1_NAMES or o.startswith("name=")]
            key, version = _key(options), 1
            controllers = frozenset(n for n in options if not n.startswith("name="))
        else:
            continue
        if key in own and key not in found:
            found[key] = Hierarchy(key, version, entry.mount_point, entry.root, controllers, own[key])
    return list(found.values())


def _key(names: Iterable[str]) -> str:
    """A v1 hierarchy's key: its controllers sorted (``cpu,cpuacct``), else its name."""
    names = list(names)
    controllers = sorted(n for n in names if not n.startswith("name="))
    return ",".join(controllers) if controllers else next(iter(names), "")


_V1_NAMES = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "net_cls",
    "net_prio", "perf_event", "hugetlb", "rdma", "misc",
})


def _v2_controllers(mount_point: str) -> frozenset[str]:
    try:
        with open(os.path.join(mount_point, "cgroup.controllers")) as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


def mode(found: Iterable[Hierarchy] | None = None) -> str:
    """``"v2"`` (unified only), ``"hybrid"`` (v1 controllers and a cgroup2 mount) or ``"v1"``."""
    found = list(hierarchies() if found is None else found)
    v1 = any(h.version == 1 and h.controllers for h in found)
    v2 = any(h.version == 2 for h in found)
    if v1:
        return "hybrid" if v2 else "v1"
    return "v2" if v2 else "none"


def resolve_parent(parent: str, hierarchy: Hierarchy) -> str:
    """``CGROUP_PARENT`` as a path in ``hierarchy``: relative values go below the caller's
    own group, absolute ones from the hierarchy's root."""
    if parent.startswith("/"):
        return os.path.normpath(parent)
    if not parent or ".." in Path(parent).parts:
        raise VzError(f"CGROUP_PARENT={parent!r} must be a path without '..'")
    return os.path.normpath(os.path.join(hierarchy.own, parent))


def parent_dirs(parent: str, found: Iterable[Hierarchy] | None = None) -> list[Path]:
    """The directory of ``CGROUP_PARENT`` in every hierarchy (they need not exist)."""
    return [h.directory(resolve_parent(parent, h))
            for h in (hierarchies() if found is None else found)]


@attrs.frozen
class CgroupDir:
    """A CT's group in one hierarchy."""

    key: str
    version: int
    controllers: frozenset[str]
    directory: Path

    def file(self, name: str) -> Path:
        return self.directory / name


def _write(path: Path, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError("open", str(path), exc.errno or 0) from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise KernelError(f"write {value!r} to", str(path), exc.errno or 0) from exc
    finally:
        os.close(fd)


def read_file(path: Path) -> str:
    """The text of a cgroup file; raises :class:`KernelError` naming it."""
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise KernelError("read", str(path), exc.errno or 0) from exc


@attrs.frozen
class CgroupSet:
    """One CT's groups, one per hierarchy (or the single v2 group)."""

    dirs: tuple[CgroupDir, ...]

    # -- planning and serialisation -----------------------------------------------------

    @classmethod
    def plan(cls, parent: str, name: str, found: Iterable[Hierarchy] | None = None) -> CgroupSet:
        """Where a CT's groups go: ``name`` below ``parent`` in every hierarchy.

        On a v1 or hybrid host every v1 hierarchy (named ones included) gets a group, and
        so does the cgroup2 mount, so that the CT's cgroup namespace roots all of them at
        its own groups.
        """
        found = list(hierarchies() if found is None else found)
        if not found:
            raise VzError("no cgroup hierarchy is mounted; mount cgroup2 on /sys/fs/cgroup")
        dirs = []
        for h in found:
            group = os.path.join(resolve_parent(parent, h), name)
            dirs.append(CgroupDir(h.key, h.version, h.controllers, h.directory(group)))
        return cls(tuple(dirs))

    def to_json(self) -> list[dict[str, Any]]:
        return [{"key": d.key, "version": d.version, "controllers": sorted(d.controllers),
                 "directory": str(d.directory)} for d in self.dirs]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> CgroupSet:
        return cls(tuple(CgroupDir(d["key"], d["version"], frozenset(d["controllers"]),
                                   Path(d["directory"])) for d in data))

    # -- queries ------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """1 when controllers live in v1 hierarchies (v1 and hybrid hosts), else 2."""
        return 1 if any(d.version == 1 and d.controllers for d in self.dirs) else 2

    def dir_for(self, controller: str) -> CgroupDir | None:
        """The group that has ``controller`` (``None`` when the host lacks it)."""
        for d in self.dirs:
            if d.version == 1 and controller in d.controllers:
                return d
        if self.version == 2:
            for d in self.dirs:
                if d.version == 2 and controller in _v2_controllers_of(d.directory.parent):
                    return d
        return None

    def has(self, controller: str) -> bool:
        return self.dir_for(controller) is not None

    def _need(self, controller: str) -> CgroupDir:
        d = self.dir_for(controller)
        if d is None:
            raise VzError(f"the {controller} cgroup controller is not available on this host")
        return d

    def path(self, controller: str, filename: str) -> Path:
        return self._need(controller).file(filename)

    def read(self, controller: str, filename: str) -> str:
        return read_file(self.path(controller, filename)).strip()

    def write(self, controller: str, filename: str, value: str) -> None:
        _write(self.path(controller, filename), value)

    def exists(self) -> bool:
        return any(d.directory.is_dir() for d in self.dirs)

    def parent(self) -> CgroupSet:
        """The groups one level up (for a CT: ``CGROUP_PARENT``, shared by every CT)."""
        return CgroupSet(tuple(attrs.evolve(d, directory=d.directory.parent) for d in self.dirs))

    def has_file(self, controller: str, filename: str) -> bool:
        """Whether the host's kernel offers ``filename`` for ``controller`` (probe before
        relying on a file that appeared or went away across kernel versions)."""
        d = self.dir_for(controller)
        return d is not None and d.file(filename).exists()

    def try_read(self, controller: str, filename: str) -> str | None:
        """The file's stripped text, or ``None`` when the controller or the file is absent."""
        d = self.dir_for(controller)
        if d is None:
            return None
        try:
            return read_file(d.file(filename)).strip()
        except KernelError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise

    def read_int(self, controller: str, filename: str) -> int | None:
        """A single-number file (``pids.current``, ``memory.usage_in_bytes``); ``None``
        when absent, :data:`UNLIMITED` for ``max``."""
        text = self.try_read(controller, filename)
        return None if text is None else parse_number(text)

    def read_keyed(self, controller: str, filename: str) -> dict[str, int]:
        """A flat keyed file (``memory.stat``, ``memory.events``, ``pids.events``) as a
        dict; empty when absent.  Lines that are not ``key number`` are skipped."""
        text = self.try_read(controller, filename)
        values: dict[str, int] = {}
        for line in (text or "").splitlines():
            key, _, number = line.partition(" ")
            try:
                values[key] = parse_number(number.strip())
            except ValueError:
                continue
        return values

    def write_limit(self, controller: str, filename: str, value: int | None) -> None:
        """Write a limit in the file's own units; ``None`` is "no limit" (``max`` on v2 and
        for ``pids.max``, ``-1`` on v1's memory files)."""
        d = self._need(controller)
        unlimited = "-1" if d.version == 1 and controller != "pids" else "max"
        _write(d.file(filename), unlimited if value is None else str(value))

    def pids(self) -> set[int]:
        """Every process in any of the CT's groups (or their subgroups)."""
        found: set[int] = set()
        for d in self.dirs:
            for root, _dirs, files in os.walk(d.directory):
                if "cgroup.procs" in files:
                    try:
                        found.update(int(p) for p in read_file(Path(root, "cgroup.procs")).split())
                    except KernelError:
                        continue
        return found

    def task_count(self) -> int:
        """Tasks (processes and threads) in the CT, as OpenVZ's numproc counts them."""
        if self.has("pids"):
            try:
                return int(self.read("pids", "pids.current"))
            except (KernelError, ValueError):
                pass
        return len(self.pids())

    # -- changes ------------------------------------------------------------------------

    def create(self) -> None:
        """Make every group (and missing parents), ready to take processes."""
        for d in self.dirs:
            made = _makedirs(d.directory)
            if d.version == 1 and "cpuset" in d.controllers:
                for directory in made:
                    _inherit_cpuset(directory)
            if d.version == 2 and self.version == 2:
                # On a hybrid host the cgroup2 group only tracks processes; its
                # controllers belong to the host and stay as they are.
                _enable_v2_controllers(d.directory)

    def delegate(self, uid: int, gid: int) -> None:
        """Let a user namespace's root (host ``uid``/``gid``) manage the CT's groups from
        inside its cgroup namespace: it owns the directories and the files that move
        processes and enable controllers, as cgroup delegation prescribes."""
        for d in self.dirs:
            names = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control") \
                if d.version == 2 else ("cgroup.procs", "tasks")
            for path in (d.directory, *(d.file(n) for n in names)):
                try:
                    os.chown(path, uid, gid)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise KernelError("chown", str(path), exc.errno or 0) from exc

    def attach(self, pid: int, beside: int | None = None) -> None:
        """Move ``pid`` into every group; with ``beside`` (the CT's init), into the group
        below them that process is in.

        A CT that manages its own part of a v2 hierarchy (systemd does: it moves init to a
        leaf and enables controllers for its children) leaves its top group unable to take
        a process: only leaves can once controllers are enabled below.  Joining init's
        group works in every case, and puts the joiner where init is.
        """
        where = {h.key: h.directory(h.own) for h in _hierarchies_of(beside)} if beside else {}
        for d in self.dirs:
            target = Path(os.path.normpath(where.get(d.key, d.directory)))
            if not target.is_relative_to(d.directory):
                target = d.directory  # never outside the CT's own group
            _write(target / "cgroup.procs", str(pid))

    def kill(self, timeout: float = 10.0, only: Callable[[int], bool] | None = None) -> set[int]:
        """SIGKILL every process in the CT's groups and wait until they are gone.

        With ``only``, a process it rejects is left alone (and ``cgroup.kill``, which
        spares nobody, is not used while there is one).  Returns the processes left alone
        that still run.
        """
        unified = next((d for d in self.dirs if d.version == 2), None)
        deadline = time.monotonic() + timeout
        spared: set[int] = set()
        while True:
            pids = self.pids() - spared
            if only is not None:
                spared |= {pid for pid in pids if not only(pid)}
                pids -= spared
            if not pids:
                return {pid for pid in spared if os.path.exists(f"/proc/{pid}")}
            if not spared and unified is not None and unified.file("cgroup.kill").exists():
                try:
                    _write(unified.file("cgroup.kill"), "1")
                except KernelError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise VzError(f"processes {sorted(pids)} survived SIGKILL for {timeout:.0f} s")
            time.sleep(0.01)

    # -- freezing -----------------------------------------------------------------------

    def _freezable(self) -> list[CgroupDir]:
        """The groups that can be frozen: v1's freezer hierarchy, and any cgroup2 group
        (``cgroup.freeze`` is part of cgroup2 itself, even on a hybrid host)."""
        return [d for d in self.dirs
                if d.version == 2 or (d.version == 1 and "freezer" in d.controllers)]

    def frozen(self) -> list[Path]:
        """The groups that keep the CT's groups frozen: a group itself or an ancestor
        (v1 ``freezer.self_freezing``, v2 ``cgroup.freeze``).  A group that does not exist
        yet is judged by its nearest existing ancestor, since it would be made frozen."""
        found: list[Path] = []
        for d in self._freezable():
            holder = _frozen_by(d.directory, d.version)
            if holder is not None and holder not in found:
                found.append(holder)
        return found

    def thaw(self) -> None:
        """Thaw every one of the CT's own groups (and their subgroups) that was frozen;
        a frozen ancestor is left as it is."""
        for d in self._freezable():
            flag, state, thawed = _FREEZE_FILES[d.version]
            for root, _dirs, files in os.walk(d.directory):
                if flag in files and read_file(Path(root, flag)).strip() == "1":
                    _write(Path(root, state), thawed)

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the (empty) groups, subgroups first; missing ones are fine."""
        errors: list[str] = []
        for d in self.dirs:
            for root, dirs, _files in os.walk(d.directory, topdown=False):
                for name in dirs:
                    _rmdir(Path(root, name), timeout, errors)
            _rmdir(d.directory, timeout, errors)
        if errors:
            raise VzError("cannot remove cgroups: " + "; ".join(errors))


_FREEZE_FILES = {1: ("freezer.self_freezing", "freezer.state", "THAWED"),
                 2: ("cgroup.freeze", "cgroup.freeze", "0")}
"""Per cgroup version: the file saying a group itself is frozen, the file to write, the
value that thaws."""


def _frozen_by(directory: Path, version: int) -> Path | None:
    """``directory`` or the ancestor that froze it; ``None`` when nothing did.  The walk
    ends at the hierarchy's root, which has no freezer files."""
    flag = _FREEZE_FILES[version][0]
    current = directory
    while not current.is_dir() and current != current.parent:
        current = current.parent
    while (current / flag).exists():
        try:
            if read_file(current / flag).strip() == "1":
                return current
        except KernelError:
            return None
        current = current.parent
    return None


def _hierarchies_of(pid: int) -> list[Hierarchy]:
    try:
        return hierarchies(pid)
    except (OSError, ValueError):  # gone: the CT's own groups will do
        return []


def parse_number(text: str) -> int:
    """A cgroup file's number: ``max`` and v1's "no limit" (LONG_MAX rounded down to a
    page, 9223372036854771712) read as :data:`UNLIMITED`; raises ValueError otherwise."""
    if text == "max":
        return UNLIMITED
    number = int(text)
    return UNLIMITED if number >= UNLIMITED - 4095 else number


def _v2_controllers_of(directory: Path) -> frozenset[str]:
    try:
        return frozenset(read_file(directory / "cgroup.subtree_control").split())
    except KernelError:
        return frozenset()


def _makedirs(directory: Path) -> list[Path]:
    """mkdir -p, returning the directories it made, top first."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    made = []
    for path in reversed(missing):
        try:
            path.mkdir()
            made.append(path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise KernelError("mkdir", str(path), exc.errno or 0) from exc
    return made


def _inherit_cpuset(directory: Path) -> None:
    """A new v1 cpuset group starts with no CPUs and no memory nodes: copy the parent's."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        value = read_file(directory.parent / name).strip()
        if not read_file(directory / name).strip():
            _write(directory / name, value)


def _enable_v2_controllers(directory: Path) -> None:
    """Enable in each ancestor's ``cgroup.subtree_control`` what its parent offers."""
    chain = []
    current = directory.parent
    while (current / "cgroup.subtree_control").exists():
        chain.append(current)
        if not (current.parent / "cgroup.subtree_control").exists():
            break
        current = current.parent
    for ancestor in reversed(chain):
        wanted = set(read_file(ancestor / "cgroup.controllers").split()) & set(V2_CONTROLLERS)
        missing = sorted(wanted - set(read_file(ancestor / "cgroup.subtree_control").split()))
        if not missing:
            continue
        # A group with processes of its own cannot pass domain controllers (memory, io) to
        # its children; the kernel does let it enable the threaded ones (cpu, pids), and
        # that quietly turns it into a threaded subtree's root where memory and io are then
        # refused.  So check first, and ask for everything in one write, which the kernel
        # applies whole or not at all.
        if _has_own_processes(ancestor):
            raise _busy_parent(ancestor, missing)
        try:
            _write(ancestor / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
        except KernelError as exc:
            if exc.errno == errno.EBUSY:
                raise _busy_parent(ancestor, missing) from exc
            # One controller the kernel will not enable here (a real-time task in the group
            # refuses cpu, for one) must not cost the others: enable them one by one,
            # domain controllers first, and leave the refused ones to whoever needs them.
            for controller in sorted(missing, key=lambda c: (c in _THREADED, c)):
                try:
                    _write(ancestor / "cgroup.subtree_control", f"+{controller}")
                except KernelError as each:
                    if each.errno == errno.EBUSY:
                        raise _busy_parent(ancestor, missing) from each
                    if each.errno not in (errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP):
                        raise


_THREADED = frozenset({"cpu", "cpuset", "pids", "perf_event"})
"""v2 controllers that work in threaded subtrees (the kernel's ``cgrp_dfl_threaded_ss_mask``)."""


def _has_own_processes(group: Path) -> bool:
    """True for a non-root v2 group with processes directly in it (the root has no
    ``cgroup.type`` and is exempt from the no-internal-process rule)."""
    if not (group / "cgroup.type").exists():
        return False
    return bool(read_file(group / "cgroup.procs").split())


def _busy_parent(group: Path, controllers: Iterable[str]) -> VzError:
    return VzError(
        f"cannot enable the {', '.join(controllers)} controllers below {group}: the group has "
        "processes of its own (cgroup v2 forbids that); set an absolute CGROUP_PARENT in "
        "vz.conf (for example CGROUP_PARENT=\"/vz\") or run vzctl from a delegated cgroup")


def _rmdir(path: Path, timeout: float, errors: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                errors.append(f"{path}: {exc.strerror}")
                return
            time.sleep(0.01)
