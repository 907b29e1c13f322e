"""Inside an OCI container: the bundle's own mounts and paths (before the root switch),
then the process of ``config.json`` (or of ``exec --process``): terminal, user,
capabilities, rlimits, seccomp, the exec fifo, exec.

These run in the start's builder (the ``oci`` plugin's ``vz_setup_child``: the mounts),
in the CT's init (``vz_finalize_child``: the process) and in a process joining the CT
(``vzcore-oci exec``); the host's
files are out of reach after the root switch, so everything this module needs is
imported before the fork (the plugin's ``child_modules``).
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import socket
import stat
import sys
import termios
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from vzcore.errors import KernelError, VzError
from vzcore.idmap import IdMap
from vzcore.lifecycle.execenv import prepare_exec
from vzcore.linux import caps, libc, mounts, safefs
from vzcore.oci.spec import RLIMITS, STANDARD_MOUNTS, cap_numbers

MS = {
    "ro": (mounts.MS_RDONLY, False), "rw": (mounts.MS_RDONLY, True),
    "nosuid": (mounts.MS_NOSUID, False), "suid": (mounts.MS_NOSUID, True),
    "nodev": (mounts.MS_NODEV, False), "dev": (mounts.MS_NODEV, True),
    "noexec": (mounts.MS_NOEXEC, False), "exec": (mounts.MS_NOEXEC, True),
    "sync": (0x10, False), "async": (0x10, True), "dirsync": (0x80, False),
    "remount": (mounts.MS_REMOUNT, False), "mand": (0x40, False), "nomand": (0x40, True),
    "atime": (0x400, True), "noatime": (0x400, False), "diratime": (0x800, True),
    "nodiratime": (0x800, False), "relatime": (0x200000, False), "norelatime": (0x200000, True),
    "strictatime": (mounts.MS_STRICTATIME, False), "nostrictatime": (mounts.MS_STRICTATIME, True),
    "bind": (mounts.MS_BIND, False), "rbind": (mounts.MS_BIND | mounts.MS_REC, False),
}
PROPAGATION = {"private": 1 << 18, "rprivate": (1 << 18) | mounts.MS_REC,
               "slave": 1 << 19, "rslave": (1 << 19) | mounts.MS_REC,
               "unbindable": 1 << 17, "runbindable": (1 << 17) | mounts.MS_REC,
               "shared": 1 << 20, "rshared": (1 << 20) | mounts.MS_REC}
"""Propagation inside the container's own mount namespace (its tree is private to the host
first, so a shared mount here is shared among the container's mounts only)."""
IGNORED_OPTIONS = {"defaults", "tmpcopyup", "notmpcopyup", "copy-symlink", "idmap", "ridmap"}
"""Options of podman's own that a runtime may take as hints; they change nothing here."""

PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAPBSET_DROP = 24
TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSCTTY = 0x540E
MAX_PATH_DEPTH = 40


def parse_options(options: Sequence[str]) -> tuple[int, int, list[str]]:
    """Mount flags, propagation flags and the remaining data options."""
    flags = propagation = 0
    data = []
    for option in options:
        if option in MS:
            bit, clear = MS[option]
            flags = flags & ~bit if clear else flags | bit
        elif option in PROPAGATION:
            propagation |= PROPAGATION[option]
        elif option in IGNORED_OPTIONS:
            continue
        else:
            data.append(option)
    return flags, propagation, data


def is_standard(mount: Mapping[str, Any]) -> bool:
    """A mount the isolation plugin makes for every CT (the spec asks the same)."""
    destination = os.path.normpath(mount.get("destination") or "")
    return STANDARD_MOUNTS.get(destination) == mount.get("type") or (
        destination == "/dev/shm" and "bind" not in (mount.get("options") or []))


def do_mounts(root: str, spec: Mapping[str, Any], *, remount: bool = False,
              idmap: IdMap | None = None) -> None:
    """The spec's mounts that are not the isolation plugin's (and with ``remount``, when
    the container joined namespaces, its /sys and mqueue too), masked and read-only paths, the root's
    read-only flag; ``root`` is the CT root (host path), this process is in the CT's new
    mount namespace and the working directory stays there.  This process is the host's
    root, outside the container's user namespace: with ``idmap`` (the container's), the
    container's IDs in mount options and device owners are given as the host's."""
    root_fd = safefs.open_root(root)
    try:
        made = {entry.mount_point: entry for entry in mounts.mountinfo()}
        replaced = False
        renew = {"/sys", "/dev/mqueue"} if remount else {"/sys"}
        for mount in spec.get("mounts") or []:
            if mount.get("type") == "cgroup":
                continue  # mounted after the CT's cgroup namespace is entered
            if is_standard(mount):
                # once one is replaced, the later ones are too: the spec's order holds
                replaced = _replace_standard(root_fd, root, mount, made, replaced, renew,
                                             idmap)
                continue
            _mount(root_fd, mount, idmap)
        linux = spec.get("linux") or {}
        for path in linux.get("maskedPaths") or []:
            _mask(root_fd, path)
        for path in linux.get("readonlyPaths") or []:
            _read_only(root_fd, path)
        make_devices(root_fd, linux.get("devices") or [], idmap)
        if (spec.get("root") or {}).get("readonly"):
            safefs.remount_at(root_fd, ".", mounts.MS_RDONLY)
        os.fchdir(root_fd)
    finally:
        os.close(root_fd)


def _replace_standard(root_fd: int, root: str, mount: Mapping[str, Any],
                      made: Mapping[str, mounts.MountEntry], replace: bool,
                      renew: set[str], idmap: IdMap | None = None) -> bool:
    """Keep the isolation plugin's mount of a standard path when it is what the spec asks
    (type and source); else, and always for /sys (the spec mounts it after /dev, the
    plugin before), put the spec's in its place, so the container sees the spec's mounts
    in the spec's order.  /sys's masks of the plugin are made again on the new one.
    Returns whether it replaced the mount."""
    destination = os.path.normpath(mount["destination"])
    entry = made.get(os.path.join(root, destination.lstrip("/")))
    source = mount.get("source") or mount.get("type")
    if not replace and entry is not None and destination not in renew \
            and entry.fstype == mount.get("type") and entry.source == source:
        return False
    relative = destination.lstrip("/")
    if entry is not None:
        with safefs.opened(root_fd, relative, os.O_PATH | os.O_NOFOLLOW) as target:
            libc.umount2(f"/proc/self/fd/{target}", 2)  # MNT_DETACH: with what is below
    _mount(root_fd, mount, idmap)
    if destination == "/sys":
        for path in _isolation_masks("sys/"):
            _mask(root_fd, path)
    return True


def _isolation_masks(prefix: str) -> tuple[str, ...]:
    try:
        from vzcore_isolation.rootfs import MASKED
    except ImportError:
        return ()
    return tuple(path for path in MASKED if path.startswith(prefix))


def _mount(root_fd: int, mount: Mapping[str, Any], idmap: IdMap | None = None) -> None:
    destination = mount["destination"].lstrip("/")
    kind = mount.get("type") or "none"
    flags, propagation, data = parse_options(mount.get("options") or [])
    if idmap is not None:
        data = [host_id_option(option, idmap) for option in data]
        if kind == "tmpfs":  # inside, the mounter (the container's root) would own it
            given = {option.partition("=")[0] for option in data}
            data += [f"{key}={host}" for key, host in zip(("uid", "gid"), idmap.root,
                                                            strict=True) if key not in given]
    source = mount.get("source") or kind
    if flags & mounts.MS_BIND or kind == "bind":
        if not os.path.exists(source):
            raise VzError(f"mount {mount['destination']}: source {source} does not exist")
        shape = "dir" if os.path.isdir(source) else "file"
        recursive = mounts.MS_REC if "rbind" in (mount.get("options") or []) else 0
        safefs.mount_at(root_fd, destination, source, None, mounts.MS_BIND | recursive,
                        kind=shape)
        extra = flags & ~(mounts.MS_BIND | mounts.MS_REC | mounts.MS_REMOUNT)
        if extra:
            safefs.remount_at(root_fd, destination, extra)
    else:
        safefs.mount_at(root_fd, destination, source, kind, flags & ~mounts.MS_REMOUNT,
                        ",".join(data) or None)
    if propagation:
        with safefs.opened(root_fd, destination, os.O_PATH | os.O_NOFOLLOW) as target:
            mounts.mount(None, f"/proc/self/fd/{target}", None, propagation)


DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def host_id_option(option: str, idmap: IdMap) -> str:
    """``uid=N``/``gid=N`` (tmpfs, devpts, ...) with the container's ID N given as the host
    ID it maps to: the kernel reads them in the mounting process's user namespace, and
    the builder is the host's root (runc mounts from inside, where N is the container's)."""
    key, _, value = option.partition("=")
    if key in ("uid", "gid") and value.isdigit():
        try:
            host = idmap.host_uid(int(value)) if key == "uid" else idmap.host_gid(int(value))
        except ValueError as exc:
            raise VzError(f"mount option {option}: {exc}") from None
        return f"{key}={host}"
    return option


def make_devices(root_fd: int, devices: Sequence[Mapping[str, Any]],
                 idmap: IdMap | None = None) -> None:
    """``linux.devices``: the nodes, made in the container's tree (its /dev is its own
    tmpfs); access to them is the devices cgroup's (``resources.devices``, the devices
    plugin's list), as with runc.  Their owners are container IDs (``idmap``: as the host's)."""
    for device in devices:
        relative = device["path"].lstrip("/")
        parent, _, name = relative.rpartition("/")
        safefs.makedirs(root_fd, parent or ".")
        given = device.get("fileMode")
        mode = 0o666 if given is None else int(given)
        kind = DEVICE_TYPES[device["type"]]
        number = 0 if kind == stat.S_IFIFO else os.makedev(int(device["major"]),
                                                           int(device["minor"]))
        with safefs.opened(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY) as dir_fd:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            os.mknod(name, kind | (mode & 0o7777), number, dir_fd=dir_fd)
            uid, gid = int(device.get("uid") or 0), int(device.get("gid") or 0)
            if idmap is not None:
                try:
                    uid, gid = idmap.host_uid(uid), idmap.host_gid(gid)
                except ValueError as exc:
                    raise VzError(f"linux.devices {device['path']}: {exc}") from None
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            os.chmod(name, mode & 0o7777, dir_fd=dir_fd, follow_symlinks=False)


def _kind(root_fd: int, path: str) -> int | None:
    try:
        with safefs.opened(root_fd, path, os.O_PATH | os.O_NOFOLLOW) as fd:
            return stat.S_IFMT(os.fstat(fd).st_mode)
    except (OSError, KernelError):
        return None


def _mask(root_fd: int, path: str) -> None:
    relative = path.lstrip("/")
    kind = _kind(root_fd, relative)
    if kind == stat.S_IFDIR:
        safefs.mount_at(root_fd, relative, "tmpfs", "tmpfs",
                        mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC,
                        "size=0,mode=555")
    elif kind is not None:
        with safefs.opened(root_fd, "dev/null", os.O_PATH | os.O_NOFOLLOW) as null:
            safefs.mount_at(root_fd, relative, f"/proc/self/fd/{null}", None, mounts.MS_BIND,
                            kind="file")


def _read_only(root_fd: int, path: str) -> None:
    relative = path.lstrip("/")
    if _kind(root_fd, relative) is None:
        return
    safefs.bind_in_place(root_fd, relative)
    safefs.remount_at(root_fd, relative, mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV
                      | mounts.MS_NOEXEC)


NAMESPACED_SYSCTLS = ("net.", "kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.",
                      "kernel.hostname", "kernel.domainname")


def sysctls(spec: Mapping[str, Any]) -> None:
    """Write ``linux.sysctl`` through /proc/sys; only namespaced keys (checked at create)
    reach here, and this process is in the CT's net, IPC and UTS namespaces already."""
    for key, value in ((spec.get("linux") or {}).get("sysctl") or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as exc:
            raise VzError(f"linux.sysctl {key}={value}: {exc.strerror}") from None


def root_propagation(spec: Mapping[str, Any]) -> None:
    """``linux.rootfsPropagation`` on the container's ``/``, after the root switch
    (pivot_root refuses a shared root)."""
    propagation = (spec.get("linux") or {}).get("rootfsPropagation")
    if propagation in PROPAGATION:
        mounts.mount(None, "/", None, PROPAGATION[propagation])


def mount_cgroup(spec: Mapping[str, Any]) -> None:
    """A ``cgroup`` mount of the spec: the unified hierarchy as the CT's cgroup namespace
    shows it (its own groups), read-only unless the spec says ``rw``."""
    for mount in spec.get("mounts") or []:
        if mount.get("type") != "cgroup":
            continue
        flags, _propagation, _data = parse_options(mount.get("options") or [])
        target = mount["destination"]
        os.makedirs(target, exist_ok=True) if not os.path.isdir(target) else None
        try:
            mounts.mount("cgroup2", target, "cgroup2",
                         flags & (mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV
                                  | mounts.MS_NOEXEC))
        except KernelError as exc:
            raise VzError(f"mount cgroup on {target}: {exc}") from None


def mount_cgroup_shared(root: str, spec: Mapping[str, Any], own_group: str | None) -> None:
    """A ``cgroup`` mount of a container without a cgroup namespace (it shares the
    runtime's), made by the builder below ``root``: the container's own unified group
    (``own_group``, a host path) bound there, as runc does; without one (no cgroup2 in
    view), the unified hierarchy as the host's namespace shows it, read-only only: a
    writable one would let the container's root change the host's groups."""
    root_fd = safefs.open_root(root)
    try:
        for mount in spec.get("mounts") or []:
            if mount.get("type") != "cgroup":
                continue
            flags, _propagation, _data = parse_options(mount.get("options") or [])
            flags &= mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC
            target = mount["destination"].lstrip("/")
            if own_group is not None:
                safefs.mount_at(root_fd, target, own_group, None, mounts.MS_BIND, kind="dir")
                if flags:
                    safefs.remount_at(root_fd, target, flags)
                continue
            if not flags & mounts.MS_RDONLY:
                raise VzError(f"mount cgroup on {mount['destination']}: the container has no "
                              "cgroup namespace and no unified group of its own in view: only "
                              "a read-only mount ('ro') is made, or give it a cgroup namespace")
            safefs.mount_at(root_fd, target, "cgroup2", "cgroup2", flags)
    finally:
        os.close(root_fd)


# -- the process ------------------------------------------------------------------------

def setup_process(process: Mapping[str, Any], *, stdio: Sequence[int] | None,
                  console: int | None, keep: Sequence[int] = (),
                  seccomp_filter: Any = None) -> list[int]:
    """Give the calling process (in the CT, after the root switch) everything of OCI's
    ``process`` but the exec: rlimits, its terminal (a new pty of the CT's devpts whose
    master goes to ``console``, a connected console socket) or ``stdio`` (descriptors to
    put on 0-2), working directory, user and groups, capabilities, no_new_privs, umask,
    seccomp.  Returns ``keep`` moved to 3, 4, ... (LISTEN_FDS / --preserve-fds)."""
    for limit in process.get("rlimits") or []:
        import resource

        resource.setrlimit(RLIMITS[limit["type"]], (int(limit["soft"]), int(limit["hard"])))
    if process.get("oomScoreAdj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(int(process["oomScoreAdj"])))
    if process.get("terminal"):
        if console is None:
            raise VzError("process.terminal is true but no --console-socket was given")
        _take_terminal(console, process)
    elif stdio is not None:
        _take_stdio(stdio)
    kept = _place(keep)
    cwd = process.get("cwd") or "/"
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    no_new_privs = bool(process.get("noNewPrivileges"))
    if seccomp_filter is not None and not no_new_privs:
        _install(seccomp_filter)  # still with CAP_SYS_ADMIN: no no_new_privs needed
        seccomp_filter = None
    _switch_user(uid, gid, [int(g) for g in user.get("additionalGids") or []],
                 process.get("capabilities"))
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise VzError(f"process.cwd {cwd}: {exc.strerror}") from None
    if no_new_privs:
        caps.set_no_new_privs()
    if user.get("umask") is not None:
        os.umask(int(user["umask"]))
    if seccomp_filter is not None:
        _install(seccomp_filter)
    return kept


def _install(program: Any) -> None:
    from vzcore.linux import seccomp

    seccomp.install(program)


def _take_stdio(stdio: Sequence[int]) -> None:
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)


def _place(keep: Sequence[int]) -> list[int]:
    """Move ``keep`` to 3, 4, ... (they were saved above every number they go to)."""
    placed = []
    for offset, fd in enumerate(keep):
        target = 3 + offset
        if fd != target:
            os.dup2(fd, target)  # dup2 leaves the copy without close-on-exec
        else:
            os.set_inheritable(target, True)
        placed.append(target)
    return placed


def _take_terminal(console: int, process: Mapping[str, Any]) -> None:
    """A new pty from the CT's own devpts: the slave becomes the controlling terminal and
    stdio, the master goes over the console socket (SCM_RIGHTS), as runc sends it."""
    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
    number = int.from_bytes(fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"), sys.byteorder)
    slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY)
    size = process.get("consoleSize") or {}
    if size.get("height") and size.get("width"):
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    array.array("H", [int(size["height"]), int(size["width"]), 0, 0]).tobytes())
    sock = socket.socket(fileno=console)
    try:
        socket.send_fds(sock, [f"/dev/pts/{number}".encode()], [master])
    finally:
        sock.detach()
        os.close(console)
        os.close(master)
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (the CT's init did setsid)
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _switch_user(uid: int, gid: int, groups: list[int],
                 capabilities: Mapping[str, list[str]] | None) -> None:
    """runc's order: the bounding set first (that needs CAP_SETPCAP, gone once the uid is
    not 0), then setgroups, setresgid, setresuid keeping the permitted set, then OCI's
    effective/permitted/inheritable sets exactly, then ambient.  Without ``capabilities``
    the process keeps the CT's (and loses them as any process that leaves uid 0)."""
    sets = {name: cap_numbers(list((capabilities or {}).get(name) or []))
            for name in ("bounding", "effective", "permitted", "inheritable", "ambient")}
    if capabilities is not None:
        for cap in range(caps.last_cap() + 1):
            if cap not in sets["bounding"] and caps.in_bounding_set(cap):
                libc.prctl(PR_CAPBSET_DROP, cap)
    os.setgroups(groups)
    libc.prctl(PR_SET_KEEPCAPS, 1 if capabilities is not None else 0)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc.prctl(PR_SET_KEEPCAPS, 0)
    if capabilities is None:
        return
    caps.set_sets(effective=sets["effective"], permitted=sets["permitted"],
                  inheritable=sets["inheritable"])
    for cap in sorted(sets["ambient"]):
        try:
            libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
        except (OSError, KernelError):
            pass  # runc too: an ambient capability not inheritable+permitted is skipped


def close_others(keep: Sequence[int]) -> None:
    """Close every descriptor above 2 but ``keep`` (the engine's pipe to the creating
    vzcore-oci among them: it then sees this process as ready)."""
    last = 3
    for fd in sorted(set(k for k in keep if k > 2)):
        if fd > last:
            os.closerange(last, fd)
        last = fd + 1
    os.closerange(last, os.sysconf("SC_OPEN_MAX"))


def wait_fifo(fifo_fd: int) -> int:
    """Block until ``start`` opens the exec fifo (opened with O_PATH by create); return the
    writing end, close-on-exec: :func:`say_started` (or :func:`say_failed`) tells ``start``
    (runc's protocol: one byte), and ``start`` reads end-of-file once the program is
    exec'd (or this process died), and only then runs the poststart hooks (the runtime
    spec: after the program started)."""
    fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.close(fifo_fd)
    return fd


def say_started(fifo: int) -> None:
    """The startContainer hooks ran: the program is exec'd next."""
    os.write(fifo, b"0")


def say_failed(fifo: int, message: str) -> None:
    """Tell ``start`` why the program will not run (a startContainer hook failed): it fails
    with this message and removes the container."""
    os.write(fifo, b"E" + message.encode()[:4000])  # one write below PIPE_BUF: atomic


def exec_process(process: Mapping[str, Any], preserved: Sequence[int] = ()) -> NoReturn:
    """Exec OCI's ``process.args`` with its ``env`` (PATH lookup in that env's PATH)."""
    args = list(process["args"])
    env = dict(item.split("=", 1) if "=" in item else (item, "")
               for item in process.get("env") or [])
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    prepare_exec()
    for fd in preserved:
        os.set_inheritable(fd, True)
    try:
        os.execvpe(args[0], args, env)
    except OSError as exc:
        print(f"vzcore-oci: exec {args[0]}: {exc.strerror}", file=sys.stderr, flush=True)
        os._exit(127 if exc.errno == errno.ENOENT else 126)
