"""The device nodes every CT has, and making a node where the CT can race it.

One table for every user: the isolation plugin makes :data:`DEV_NODES` in each CT's /dev
tmpfs, the devices plugin derives its default allow list and the names a grant may not
take from :data:`STANDARD`, and the console and devpts are owned by group :data:`TTY_GID`.
The numbers are the kernel's fixed ones (Documentation/admin-guide/devices.txt).

:func:`make_node` makes a node in a directory a running CT can write to: under a random
temporary name, owned and moded there, then renamed into place, so the CT never sees
(nor can swap) a half-made node under the real name.
"""

from __future__ import annotations

import errno
import os
import stat

import attrs

from vzcore.errors import KernelError

TTY_GID = 5
"""The ``tty`` group inside the CT (Debian's), which owns its terminals and the console."""


@attrs.frozen
class StandardDevice:
    """A character device every CT may open.

    :ivar name: its name below /dev.
    :ivar minor: ``None``: every minor of ``major`` (the CT's devpts terminals).
    :ivar node: made as a node in the CT's /dev tmpfs; else /dev has it another way
        (console: the CT's console pty bound there; ptmx: a link into pts; pts: devpts).
    """

    name: str
    major: int
    minor: int | None
    node: bool


STANDARD: tuple[StandardDevice, ...] = (
    StandardDevice("null", 1, 3, True),
    StandardDevice("zero", 1, 5, True),
    StandardDevice("full", 1, 7, True),
    StandardDevice("random", 1, 8, True),
    StandardDevice("urandom", 1, 9, True),
    StandardDevice("tty", 5, 0, True),
    StandardDevice("console", 5, 1, False),
    StandardDevice("ptmx", 5, 2, False),
    StandardDevice("pts", 136, None, False),
)
"""The devices of every CT, in both profiles (docs/devices.md)."""

DEV_NODES: dict[str, tuple[int, int]] = {
    d.name: (d.major, d.minor) for d in STANDARD if d.node and d.minor is not None}
"""``{name: (major, minor)}`` of the nodes made in each CT's /dev."""

BLOCK_NODES_OPTION = "dev_block_nodes"
"""``run.options`` key, in the start's builder: block device nodes (``[name, st_rdev]``)
that a ``vz_setup_child`` of a subsystem before isolation asks for in the CT's /dev (which
the isolation plugin builds after it): mode 0600, owned by the CT's root.  Only the name:
opening stays the devices cgroup's to allow (the disk plugin's second-level quota gives the
quota tools the node of the CT's root device, which quotactl(2) looks up by name)."""

OTHER_DEV_NAMES = ("shm", "mqueue", "fd", "stdin", "stdout", "stderr", "core")
"""What else every CT's /dev holds (mounts and links), besides :data:`STANDARD`."""

RESERVED_NAMES = frozenset(d.name for d in STANDARD) | frozenset(OTHER_DEV_NAMES)
"""First path parts of /dev that a CT has already: a granted host node may not take one."""


def make_node(dir_fd: int, name: str, kind: int, device: int, mode: int,
              owner: tuple[int, int]) -> None:
    """Make device node ``name`` (``kind``: ``stat.S_IFCHR`` or ``S_IFBLK``) in directory
    ``dir_fd``, owned by ``owner`` with permission bits ``mode``, replacing what is there
    (a directory there is refused with ``EISDIR``).

    The node is made under a random hidden name, checked, given its owner and mode through
    a descriptor (never a name the CT could swap), and only then renamed into place.
    """
    temporary = _mknod_temporary(dir_fd, name, kind, device)
    try:
        fd = os.open(temporary, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            made = os.fstat(fd)
            if stat.S_IFMT(made.st_mode) != kind or made.st_rdev != device:
                raise KernelError("make device node", name, errno.EEXIST)  # swapped meanwhile
            os.chown(f"/proc/self/fd/{fd}", *owner)  # an O_PATH descriptor: no fchown
            os.chmod(f"/proc/self/fd/{fd}", mode)
            try:
                os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                raise KernelError("make device node", name, exc.errno or 0) from None
        finally:
            os.close(fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _mknod_temporary(dir_fd: int, name: str, kind: int, device: int) -> str:
    for _attempt in range(16):
        temporary = f".{name}.vz-{os.urandom(8).hex()}"
        try:
            os.mknod(temporary, kind | 0o600, device, dir_fd=dir_fd)
            return temporary
        except FileExistsError:
            continue  # the CT guessed a name: take another
        except OSError as exc:
            raise KernelError("make device node", name, exc.errno or 0) from None
    raise KernelError("make device node", name, errno.EEXIST)
