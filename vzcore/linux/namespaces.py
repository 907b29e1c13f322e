"""Linux namespaces: names, clone flags, unshare and setns."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable

from vzcore.errors import VzError, describe
from vzcore.linux import libc

FLAGS = {
    "mnt": 0x00020000,  # CLONE_NEWNS
    "cgroup": 0x02000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "net": 0x40000000,
    "time": 0x00000080,
}
"""Namespace name (as in ``/proc/PID/ns/NAME``) -> ``CLONE_NEW*`` flag."""

JOIN_ORDER = ("pid", "time", "cgroup", "ipc", "uts", "net", "user", "mnt")
"""The order a joining process enters a CT's namespaces: first the others, as the host's
root (a privileged CT's PID namespace belongs to the host's user namespace, so it must be
joined before leaving that), then the CT's user namespace, then its mount namespace, which
belongs to the CT's user namespace."""


def flags_of(names: Iterable[str]) -> int:
    """The ``CLONE_NEW*`` flags for namespace ``names``; unknown names raise ValueError."""
    flags = 0
    for name in names:
        try:
            flags |= FLAGS[name]
        except KeyError:
            raise ValueError(f"unknown namespace {name!r}; known: {', '.join(FLAGS)}") from None
    return flags


def unshare(names: Iterable[str]) -> None:
    """Move the calling process into new namespaces (``pid`` applies to its children)."""
    flags = flags_of(names)
    if flags:
        libc.unshare(flags)


def identity(pid: int | str, name: str) -> str:
    """The namespace's identity, as ``readlink /proc/PID/ns/NAME`` shows it (``net:[4026...]``)."""
    return os.readlink(f"/proc/{pid}/ns/{name}")


def differing(pid: int, names: Iterable[str] = JOIN_ORDER) -> list[str]:
    """The namespaces of ``pid`` that differ from the caller's, in :data:`JOIN_ORDER`."""
    result = []
    for name in names:
        try:
            if identity(pid, name) != identity("self", name):
                result.append(name)
        except FileNotFoundError:
            continue
    return result


def open_namespaces(pid: int, names: Iterable[str]) -> list[tuple[str, int]]:
    """Open ``/proc/PID/ns/NAME`` for each name (do this before joining any of them)."""
    opened: list[tuple[str, int]] = []
    try:
        for name in names:
            opened.append((name, os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
    except OSError:
        for _name, fd in opened:
            os.close(fd)
        raise
    return opened


def enter(opened: list[tuple[str, int]]) -> None:
    """Join namespaces opened by :func:`open_namespaces`, closing the descriptors."""
    try:
        for name, fd in opened:
            libc.setns(fd, FLAGS[name])
    finally:
        for _name, fd in opened:
            os.close(fd)


def call_in(pid: int, names: Iterable[str], function: Callable[[], None]) -> None:
    """Run ``function`` in a forked process inside ``pid``'s namespaces ``names``.

    Used for small live changes (a CT's host name, a sysctl of its network namespace)
    without exec'ing anything inside the CT.  Raises :class:`VzError` with the child's
    error message when ``function`` fails.  With ``mnt``, paths are ``pid``'s: its root
    is taken too (a CT sharing the host's mount namespace is rooted by chroot).
    """
    names = list(names)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        try:
            os.close(read_fd)
            root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) \
                if "mnt" in names else None
            enter(open_namespaces(pid, names))
            if root is not None:
                take_root(root)
            function()
            os._exit(0)
        except BaseException as exc:
            os.write(write_fd, describe(exc).encode()[:4096])
            os._exit(1)
    os.close(write_fd)
    try:
        message = os.read(read_fd, 4096).decode(errors="replace")
    finally:
        os.close(read_fd)
    _pid, status = os.waitpid(child, 0)
    if status != 0:
        raise VzError(message or f"process in the namespaces of {pid} failed ({status})")


def socket_in_netns(pid: int, family: int, type_: int, proto: int = 0) -> socket.socket:
    """A socket created in the network namespace of ``pid`` (a netlink socket there
    configures that namespace's devices, addresses and routes from the host).

    A socket belongs to the namespace it was created in, so the calling thread joins
    ``pid``'s network namespace just long enough to create it and then returns to its
    own; only this thread moves (namespaces are per thread), and no process is forked.
    """
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(target, FLAGS["net"])
            try:
                return socket.socket(family, type_ | socket.SOCK_CLOEXEC, proto)
            finally:
                libc.setns(own, FLAGS["net"])
        finally:
            os.close(own)
    finally:
        os.close(target)


def take_root(root_fd: int) -> None:
    """Make the directory ``root_fd`` (``/proc/PID/root``, opened before joining PID's
    mount namespace) the root and working directory, when it is not the root already;
    closes it.  After ``setns`` the root is the namespace's, which is a CT's own root
    unless the CT shares a mount namespace and was rooted by ``chroot``."""
    try:
        wanted, current = os.fstat(root_fd), os.stat("/")
        if (wanted.st_dev, wanted.st_ino) != (current.st_dev, current.st_ino):
            os.fchdir(root_fd)
            os.chroot(".")
            os.chdir("/")
    finally:
        os.close(root_fd)
