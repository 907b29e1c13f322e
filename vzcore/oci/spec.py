"""A bundle's ``config.json``: read it, refuse what vzcore cannot honour (by field name and
reason, before anything is made), and map what OCI and vzcore share onto vzcore's own
parameters.

The mapping (docs/oci-runtime.md has the table):

* ``linux.resources.memory.limit`` -> ``--ram`` (``PHYSPAGES``, the memory cgroup limit);
  ``reservation`` -> ``--ram``'s barrier; ``swap`` (memory+swap, OCI's meaning) ->
  ``--swap`` (``SWAPPAGES``) of ``swap - limit``.
* ``linux.resources.pids.limit`` -> ``--numproc`` (``NUMPROC``, pids.max).
* ``linux.resources.cpu.shares`` -> ``--cpuunits`` (1024 shares = 1000 units, OpenVZ's
  default weight); ``quota``/``period`` -> ``--cpulimit`` in percent of one CPU;
  ``cpus`` -> ``--cpumask``.
* ``linux.resources.devices`` -> ``--devices`` (the devices plugin's allow list; every CT
  starts from "deny all but the standard nodes", which is what OCI's first rule asks).
* annotations ``org.openvz.NAME=VALUE`` -> ``--NAME VALUE`` for any parameter a plugin
  declares (``cpuunits``, ``cpulimit``, ``numproc``, ``privvmpages``, ...).
* ``hostname`` -> ``HOSTNAME``.

The rest of the spec (mounts, masked and read-only paths, the process, sysctls, seccomp)
is done inside the container by the ``oci`` plugin (:mod:`vzcore.oci.child`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from vzcore.errors import InvalidValue, VzError
from vzcore.idmap import IdMap, IdRange
from vzcore.linux.caps import NAMES as CAP_NAMES
from vzcore.linux.caps import NUMBERS as CAP_NUMBERS

ANNOTATION_PREFIX = "org.openvz."
PAGE = 4096
SUPPORTED_NAMESPACES = {"pid", "network", "mount", "ipc", "uts", "cgroup", "user"}
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
              "cgroup": "cgroup", "user": "user"}
"""OCI's namespace types -> their names in ``/proc/PID/ns`` (and vzcore's)."""
SHAREABLE = ("pid", "network", "mount", "ipc", "uts", "cgroup")
"""Namespaces a spec may leave out: the container then stays in the runtime's (runc's
rule; ``podman --network=host``, ``--pid=host``, ``--ipc=host``).  Without ``user`` it
is vzcore's privileged profile, as before."""

STANDARD_MOUNTS = {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
                   "/dev/mqueue": "mqueue", "/sys": "sysfs"}
"""Mounts the isolation plugin makes for every CT: the spec's entries for them are
satisfied by the plugin's own (runc's defaults: same types and flags)."""

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")


class Unsupported(VzError):
    """A field of config.json that vzcore does not honour (it is never ignored)."""

    exit_code = 21


def _refuse(field: str, why: str) -> Unsupported:
    return Unsupported(f"config.json: {field}: {why}; vzcore-oci refuses rather than ignore it")


@attrs.frozen
class Bundle:
    """A bundle directory and its parsed ``config.json``."""

    path: Path
    spec: Mapping[str, Any]

    @classmethod
    def load(cls, directory: str, config: Path | None = None) -> Bundle:
        """The bundle at ``directory``; its ``config.json``, or ``config`` (the copy
        vzcore-oci keeps from create on: the spec says later edits do not count)."""
        path = Path(directory).resolve()
        config = config or path / "config.json"
        try:
            spec = json.loads(config.read_text())
        except FileNotFoundError:
            raise InvalidValue(f"bundle {path}: no config.json; give the bundle directory with "
                               "--bundle") from None
        except (OSError, ValueError) as exc:
            raise InvalidValue(f"bundle {path}: config.json is unreadable: {exc}") from None
        if not isinstance(spec, dict):
            raise InvalidValue(f"bundle {path}: config.json is not a JSON object")
        return cls(path, spec)

    @property
    def rootfs(self) -> Path:
        root = self.spec.get("root") or {}
        text = root.get("path") or "rootfs"
        return (self.path / text).resolve() if not os.path.isabs(text) else Path(text)

    @property
    def readonly(self) -> bool:
        return bool((self.spec.get("root") or {}).get("readonly"))

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.spec.get("annotations") or {})

    @property
    def terminal(self) -> bool:
        return bool((self.spec.get("process") or {}).get("terminal"))

    def linux(self) -> Mapping[str, Any]:
        return self.spec.get("linux") or {}

    def hooks(self, kind: str) -> list[Mapping[str, Any]]:
        return list((self.spec.get("hooks") or {}).get(kind) or [])


def check(bundle: Bundle) -> None:
    """Refuse the first field vzcore cannot honour; nothing is made yet."""
    spec = bundle.spec
    version = str(spec.get("ociVersion") or "")
    if not version.startswith("1."):
        raise _refuse("ociVersion", f"{version!r} is not a 1.x runtime-spec version")
    for key in ("solaris", "windows", "vm", "zos"):
        if spec.get(key):
            raise _refuse(key, "this section is not for Linux containers")
    # other unknown properties are the spec's extension point: runtimes MUST accept them
    if not bundle.rootfs.is_dir():
        raise InvalidValue(f"config.json: root.path: {bundle.rootfs} is not a directory")
    _check_process(spec.get("process"))
    _check_mounts(spec.get("mounts") or [])
    for kind, hooks in (spec.get("hooks") or {}).items():
        if kind not in HOOK_KINDS:
            raise _refuse(f"hooks.{kind}", "unknown hook kind")
        for index, hook in enumerate(hooks or []):
            if not isinstance(hook, dict) or not os.path.isabs(str(hook.get("path") or "")):
                raise _refuse(f"hooks.{kind}[{index}].path", "must be an absolute path")
    for key, value in bundle.annotations.items():
        if not isinstance(value, str):
            raise _refuse(f"annotations.{key}", "an annotation's value must be a string")
    _check_linux(bundle.linux(), spec.get("process"))
    check_shared_names(spec, bundle.linux())


def _check_process(process: Any) -> None:
    if process is None:
        return  # create may go on; start refuses (the runtime spec's rule)
    args = process.get("args") or []
    if not args or not all(isinstance(a, str) for a in args):
        raise _refuse("process.args", "give the program and its arguments as strings")
    if not os.path.isabs(str(process.get("cwd") or "/")):
        raise _refuse("process.cwd", "must be an absolute path")
    for field in ("apparmorProfile", "selinuxLabel", "commandLine", "ioPriority",
                  "scheduler", "execCPUAffinity"):
        if process.get(field):
            raise _refuse(f"process.{field}", "not supported by vzcore")
    user = process.get("user") or {}
    if user.get("username"):
        raise _refuse("process.user.username", "Windows only")
    for index, limit in enumerate(process.get("rlimits") or []):
        if limit.get("type") not in RLIMITS:
            raise _refuse(f"process.rlimits[{index}].type", f"unknown limit {limit.get('type')!r}")
    for name, caps in (process.get("capabilities") or {}).items():
        if name not in CAP_SETS:
            raise _refuse(f"process.capabilities.{name}", "unknown capability set")
        for cap in caps or []:
            if _cap_number(cap) is None:
                raise _refuse(f"process.capabilities.{name}", f"unknown capability {cap!r}")
            if cap == "CAP_SYS_PTRACE":
                raise _refuse(f"process.capabilities.{name}", "CAP_SYS_PTRACE is never granted "
                              "to a container without a user namespace: it is the host's and "
                              "would reach the runtime's own processes (CVE-2019-5736); drop it "
                              "(podman: --cap-drop SYS_PTRACE)")


def _cap_number(name: str) -> int | None:
    if not isinstance(name, str) or not name.startswith("CAP_"):
        return None
    return CAP_NUMBERS.get(name[4:].lower())


def cap_numbers(names: list[str]) -> frozenset[int]:
    """The capability numbers of OCI's names (``CAP_SYS_ADMIN``), checked by :func:`check`."""
    return frozenset(n for n in (_cap_number(name) for name in names) if n is not None)


def capability_setting(capabilities: Mapping[str, list[str]]) -> str | None:
    """``CAPABILITY`` (the isolation plugin's) granting what the process's capabilities
    ask beyond vzcore's default set; the ``oci`` plugin narrows each process to the
    spec's sets exactly, after the seccomp filter is in (which needs CAP_SYS_ADMIN when
    ``noNewPrivileges`` is false, as runc's order has it)."""
    wanted: set[int] = set()
    for names in capabilities.values():
        wanted |= cap_numbers(list(names or []))
    return " ".join(f"{CAP_NAMES[number]}:on" for number in sorted(wanted)) or None


def _check_mounts(mounts: list[Any]) -> None:
    for index, mount in enumerate(mounts):
        where = f"mounts[{index}]"
        destination = mount.get("destination") or ""
        if not os.path.isabs(destination):
            raise _refuse(f"{where}.destination", f"{destination!r} is not an absolute path")
        for field in ("uidMappings", "gidMappings"):
            if mount.get(field):
                raise _refuse(f"{where}.{field}", "id-mapped mounts are not supported")


def _check_linux(linux: Mapping[str, Any], process: Any = None) -> None:
    kinds = set()
    for index, namespace in enumerate(linux.get("namespaces") or []):
        kind = namespace.get("type")
        if kind not in SUPPORTED_NAMESPACES:
            raise _refuse(f"linux.namespaces[{index}].type", f"{kind!r} is not supported")
        if kind in kinds:
            raise _refuse(f"linux.namespaces[{index}].type", f"{kind!r} is given twice")
        path = namespace.get("path")
        if path:
            if kind not in JOINABLE:
                raise _refuse(f"linux.namespaces[{index}].path", f"joining an existing {kind} "
                              "namespace is not supported (all but user can be joined)")
            _check_namespace_file(f"linux.namespaces[{index}].path", path, kind)
        kinds.add(kind)
    _check_not_own(linux, kinds)
    if "user" in kinds:
        check_user_mapped(process, id_map(linux))
    for field in ("uidMappings", "gidMappings"):
        if "user" not in kinds and linux.get(field):
            raise _refuse(f"linux.{field}", "mappings need a user namespace")
    for index, device in enumerate(linux.get("devices") or []):
        if device.get("type") not in ("c", "b", "u", "p") or not os.path.isabs(
                str(device.get("path") or "")):
            raise _refuse(f"linux.devices[{index}]", "give an absolute path and a type c, b, "
                          "u or p")
    for field in ("intelRdt", "personality", "timeOffsets", "mountLabel",
                  "memoryPolicy", "netDevices"):
        if linux.get(field):
            raise _refuse(f"linux.{field}", "not supported by vzcore")
    propagation = linux.get("rootfsPropagation") or ""
    if propagation and propagation not in ("private", "rprivate", "slave", "rslave", "shared",
                                           "rshared", "unbindable", "runbindable"):
        raise _refuse("linux.rootfsPropagation", f"unknown propagation {propagation!r}")
    _check_resources(linux.get("resources") or {})
    seccomp = linux.get("seccomp")
    if seccomp:
        from vzcore.oci import seccomp as oci_seccomp

        oci_seccomp.check(seccomp)


def id_map(linux: Mapping[str, Any]) -> IdMap:
    """The user namespace's ID map: exactly the spec's ``linux.uidMappings`` and
    ``gidMappings`` (several ranges, any sizes, up to the kernel's 340), refused naming the
    field when the kernel would not take them or vzcore cannot run a container with them
    (container ID 0 unmapped, the host's ID 0 mapped: :func:`vzcore.idmap.check_ranges`)."""
    from vzcore.idmap import IdMap, MapError, check_ranges

    maps = []
    for field, kind in (("uidMappings", "user"), ("gidMappings", "group")):
        ranges = []
        for index, item in enumerate(linux.get(field) or []):
            values = [item.get(key) if isinstance(item, dict) else None
                      for key in ("containerID", "hostID", "size")]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise _refuse(f"linux.{field}[{index}]", "give containerID, hostID and size "
                              "as numbers")
            ranges.append(IdRange(*(int(v) for v in values if v is not None)))
        if not ranges:
            raise _refuse(f"linux.{field}", "a user namespace needs a mapping (vzcore runs "
                          "its init as the container's root, ID 0)")
        try:
            check_ranges(ranges, kind)
        except MapError as exc:
            raise _refuse(f"linux.{field}", str(exc)) from None
        maps.append(tuple(ranges))
    return IdMap.of_ranges(*maps)


def check_user_mapped(process: Any, idmap: IdMap) -> None:
    """The process's user and groups must be IDs of the namespace (setresuid fails else)."""
    user = (process or {}).get("user") or {}
    checks = [("process.user.uid", idmap.host_uid, user.get("uid", 0)),
              ("process.user.gid", idmap.host_gid, user.get("gid", 0))]
    checks += [(f"process.user.additionalGids[{i}]", idmap.host_gid, gid)
               for i, gid in enumerate(user.get("additionalGids") or [])]
    for field, host_id, value in checks:
        try:
            host_id(int(value))
        except (TypeError, ValueError) as exc:
            raise _refuse(field, f"{exc}; map it in linux.uidMappings/gidMappings") from None


JOINABLE = {"network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt", "pid": "pid",
            "cgroup": "cgroup"}
"""Namespaces a container can join by path (the start's holder enters them instead of
making its own, so init is forked into them), by OCI type -> /proc name.  In a joined PID
namespace the container's process is not PID 1; in a joined mount namespace its root is
``root.path`` as that namespace shows it (runc's rule) and its mounts are made there."""


def namespace_paths(linux: Mapping[str, Any]) -> dict[str, str]:
    """The namespaces ``linux.namespaces`` names by path (checked at create), as the
    start's ``join_namespaces`` option wants them: /proc name -> path."""
    return {JOINABLE[n["type"]]: str(n["path"]) for n in linux.get("namespaces") or []
            if n.get("path")}


def shared_namespaces(linux: Mapping[str, Any]) -> list[str]:
    """The namespaces the spec leaves out, which the container shares with the runtime
    (the start's ``share_namespaces`` option): /proc names."""
    given = {n.get("type") for n in linux.get("namespaces") or []}
    return sorted(PROC_NAMES[kind] for kind in SHAREABLE if kind not in given)


NAMESPACED_SYSCTLS = {"net.": "network", "kernel.shm": "ipc", "kernel.msg": "ipc",
                      "kernel.sem": "ipc", "fs.mqueue.": "ipc", "kernel.hostname": "uts",
                      "kernel.domainname": "uts"}
"""The sysctls a container may set, each in its own (or joined) namespace of that type."""


def _check_not_own(linux: Mapping[str, Any], kinds: set[str]) -> None:
    """What needs a namespace the container does not get (one shared with the runtime,
    which would change the host's), refused as runc refuses it."""
    shared = set(SHAREABLE) - kinds
    own_mount = "mount" in kinds and not any(n.get("type") == "mount" and n.get("path")
                                             for n in linux.get("namespaces") or [])
    if "user" in kinds and not own_mount:
        raise _refuse("linux.namespaces", "a user namespace needs a mount namespace of the "
                      "container's own (its mounts are locked in one it owns)")
    for key in linux.get("sysctl") or {}:
        kind = next((k for prefix, k in NAMESPACED_SYSCTLS.items() if key.startswith(prefix)),
                    None)
        if kind is None:
            raise _refuse(f"linux.sysctl.{key}", "not a namespaced sysctl: it would change "
                          "the host's")
        if kind in shared:
            raise _refuse(f"linux.sysctl.{key}", f"the container has no {kind} namespace of "
                          "its own: it would change the host's")


def check_shared_names(spec_: Mapping[str, Any], linux: Mapping[str, Any]) -> None:
    """``hostname`` and ``domainname`` need a UTS namespace (the host's is never renamed);
    ``org.openvz.shmpages`` an IPC namespace (its limit is written as IPC sysctls)."""
    kinds = {n.get("type") for n in linux.get("namespaces") or []}
    for field in ("hostname", "domainname"):
        if spec_.get(field) and "uts" not in kinds:
            raise _refuse(field, "the container has no UTS namespace of its own: it would "
                          "rename the host")
    annotations = spec_.get("annotations") or {}
    if "ipc" not in kinds and f"{ANNOTATION_PREFIX}shmpages" in annotations:
        raise _refuse(f"annotations.{ANNOTATION_PREFIX}shmpages", "the container has no IPC "
                      "namespace of its own: its limit would be the host's IPC sysctls")


def _check_namespace_file(field: str, path: str, kind: str) -> None:
    """``path`` must be a namespace file of ``kind`` (``/proc/PID/ns/net``, a bind of one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidValue(f"config.json: {field}: {path}: {exc.strerror}") from None
    try:
        import fcntl

        ns_get_nstype = 0xB703
        nstype = fcntl.ioctl(fd, ns_get_nstype)
    except OSError:
        nstype = None
    finally:
        os.close(fd)
    from vzcore.linux.namespaces import FLAGS

    if nstype != FLAGS[JOINABLE[kind]]:
        raise InvalidValue(f"config.json: {field}: {path} is not a {kind} namespace")


_RESOURCE_FIELDS = {
    "memory": {"limit", "reservation", "swap", "disableOOMKiller", "kernel", "kernelTCP",
               "swappiness", "useHierarchy", "checkBeforeUpdate"},
    "pids": {"limit"},
    "cpu": {"shares", "quota", "period", "cpus", "mems", "burst"},
    "devices": None,
}


def _check_resources(resources: Mapping[str, Any]) -> None:
    for section, value in resources.items():
        if section not in _RESOURCE_FIELDS:
            if value:
                raise _refuse(f"linux.resources.{section}", "not supported by vzcore")
            continue
        fields = _RESOURCE_FIELDS[section]
        if fields is None or not value:
            continue
        for field, item in value.items():
            if field not in fields and item not in (None, 0, False, ""):
                raise _refuse(f"linux.resources.{section}.{field}", "not supported by vzcore")
    memory = resources.get("memory") or {}
    if memory.get("disableOOMKiller"):
        raise _refuse("linux.resources.memory.disableOOMKiller", "a vzcore container's OOM "
                      "killer is the kernel's memory cgroup one; it cannot be turned off")
    for field in ("kernel", "kernelTCP"):
        if memory.get(field):
            raise _refuse(f"linux.resources.memory.{field}", "use the annotations "
                          "org.openvz.kmemsize / org.openvz.tcpsndbuf instead")
    if memory.get("swappiness") not in (None, 0):
        raise _refuse("linux.resources.memory.swappiness", "not supported by vzcore")
    cpu = resources.get("cpu") or {}
    if cpu.get("mems"):
        raise _refuse("linux.resources.cpu.mems", "NUMA memory nodes are not supported")
    if cpu.get("burst"):
        raise _refuse("linux.resources.cpu.burst", "not supported by vzcore")
    for index, rule in enumerate(resources.get("devices") or []):
        if rule.get("allow") and (rule.get("type") or "a") == "a":
            raise _refuse(f"linux.resources.devices[{index}]", "allowing every device is not "
                          "supported; allow devices by type and number")


def options(bundle: Bundle) -> dict[str, list[str]]:
    """vzctl options (``--ram``, ``--numproc``, ...) from the spec's resources and the
    ``org.openvz.*`` annotations (which win); parsed by the plugins' own parameter types."""
    given: dict[str, list[str]] = {}
    given.update(resource_options(bundle.linux().get("resources") or {}))
    for key, value in bundle.annotations.items():
        if key.startswith(ANNOTATION_PREFIX):
            given[key[len(ANNOTATION_PREFIX):]] = [value]
    return given


def resource_options(resources: Mapping[str, Any]) -> dict[str, list[str]]:
    """vzctl options for OCI's ``linux.resources`` (also ``update --resources``)."""
    given: dict[str, list[str]] = {}
    memory = resources.get("memory") or {}
    limit = _positive(memory.get("limit"))
    reservation = _positive(memory.get("reservation"))
    if limit is not None:
        given["ram"] = [str(limit)]
        if reservation is not None:
            given["physpages"] = [f"{reservation // PAGE}:{limit // PAGE}"]
    swap = memory.get("swap")
    if swap is not None and limit is not None:
        given["swap"] = ["0" if swap < 0 else str(max(swap - limit, 0))]
    pids = _positive((resources.get("pids") or {}).get("limit"))
    if pids is not None:
        given["numproc"] = [str(pids)]
    cpu = resources.get("cpu") or {}
    shares = _positive(cpu.get("shares"))
    if shares is not None:
        given["cpuunits"] = [str(max(8, min(500000, shares * 1000 // 1024)))]
    quota, period = cpu.get("quota"), _positive(cpu.get("period")) or 100000
    if quota is not None and quota > 0:
        given["cpulimit"] = [str(max(1, -(-quota * 100 // period)))]
    if cpu.get("cpus"):
        given["cpumask"] = [str(cpu["cpus"])]
    devices = device_options(resources.get("devices") or [])
    if devices:
        given["devices"] = devices
    return given


def _positive(value: Any) -> int | None:
    """OCI's "no limit" is absent, 0 or -1."""
    if value is None or isinstance(value, bool):
        return None
    number = int(value)
    return number if number > 0 else None


def device_options(rules: list[Mapping[str, Any]]) -> list[str]:
    """``--devices`` values for OCI's device cgroup rules: the allow rules by number
    (a deny rule only narrows vzcore's default of "deny all but the standard nodes")."""
    values = []
    for rule in rules:
        if not rule.get("allow"):
            continue
        kind = rule.get("type") or "a"
        major, minor = rule.get("major"), rule.get("minor")
        if major is None or major < 0:
            raise _refuse("linux.resources.devices", f"allowing every major of type {kind!r} "
                          "is not supported")
        access = "".join(c for c in (rule.get("access") or "rwm") if c in "rw") or "r"
        values.append(f"{kind}:{major}:{'all' if minor is None or minor < 0 else minor}:{access}")
    return values
