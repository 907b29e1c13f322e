"""Granted device nodes: looked up on the host, made in a CT's /dev, removed on revoke.

The host's root makes the node in the CT's /dev (a tmpfs the isolation plugin mounted as
the host's root, so its nodes open in a user namespace too), with the host node's type,
numbers and permission bits, owned by the CT's root: a user namespace's root, which
cannot mknod, gets a node it owns.  Paths inside the CT are resolved with
:mod:`vzcore.linux.safefs`, so a link the CT planted in its /dev leads nowhere else.
Whether the node opens is the device cgroup's decision (:mod:`vzcore_devices.enforce`).
In a running CT a node is made under a temporary name and renamed into place
(:func:`vzcore.linux.devnodes.make_node`), so the CT never sees a half-made one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from vzcore.errors import KernelError
from vzcore.linux import safefs
from vzcore.linux.devnodes import make_node
from vzcore_devices.record import Node

HOST_DEV = "/dev"


def lookup(name: str, access: str) -> Node:
    """The host node ``/dev/NAME`` as a :class:`Node`; raise ``LookupError`` saying why not."""
    path = os.path.join(HOST_DEV, name)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise LookupError(f"{path} does not exist on the host ({os.strerror(exc.errno or 0)})") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise LookupError(f"{path} on the host is not a device node")
    return Node(name=name, kind=kind, major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                mode=stat.S_IMODE(st.st_mode), access=access)


def make(root: str, nodes: Iterable[Node], owner: tuple[int, int]) -> None:
    """Make ``nodes`` below ``root``/dev (``root``: the CT's root as the caller sees it, the
    host path at start, ``/proc/PID/root`` of a running CT), owned by ``owner``."""
    root_fd = safefs.open_root(root)
    try:
        for node in nodes:
            _make_one(root_fd, node, owner)
    finally:
        os.close(root_fd)


def _make_one(root_fd: int, node: Node, owner: tuple[int, int]) -> None:
    directory, _, name = f"dev/{node.name}".rpartition("/")
    if directory != "dev":
        _makedirs(root_fd, directory, owner)
    kind = stat.S_IFCHR if node.kind == "c" else stat.S_IFBLK
    with safefs.opened(root_fd, directory, os.O_PATH | os.O_DIRECTORY) as dir_fd:
        # Made whole under a temporary name and renamed over what the CT has there (the
        # name was granted: what the CT put there goes): a running CT cannot race it.
        make_node(dir_fd, name, kind, os.makedev(node.major, node.minor), node.mode, owner)


def _makedirs(root_fd: int, directory: str, owner: tuple[int, int]) -> None:
    done = ""
    for part in directory.split("/"):
        done = f"{done}/{part}" if done else part
        try:
            with safefs.opened(root_fd, done, os.O_PATH | os.O_DIRECTORY):
                continue
        except KernelError:
            pass
        safefs.makedirs(root_fd, done)
        with safefs.opened(root_fd, done, os.O_PATH | os.O_DIRECTORY) as fd:
            os.chown(f"/proc/self/fd/{fd}", *owner)


def remove(root: str, nodes: Iterable[Node]) -> None:
    """Remove ``nodes`` from ``root``/dev, each only if it is still that device node."""
    root_fd = safefs.open_root(root)
    try:
        for node in nodes:
            directory, _, name = f"dev/{node.name}".rpartition("/")
            try:
                with safefs.opened(root_fd, directory, os.O_PATH | os.O_DIRECTORY) as dir_fd:
                    st = os.lstat(name, dir_fd=dir_fd)
                    kind = stat.S_IFCHR if node.kind == "c" else stat.S_IFBLK
                    if stat.S_IFMT(st.st_mode) == kind and \
                            st.st_rdev == os.makedev(node.major, node.minor):
                        os.unlink(name, dir_fd=dir_fd)
            except (FileNotFoundError, KernelError):
                continue  # gone already, or its directory is
    finally:
        os.close(root_fd)
