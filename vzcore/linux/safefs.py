"""File access inside a CT's tree that never follows a link out of it.

A CT's root can plant symlinks (``/etc/resolv.conf -> /etc/shadow`` of the host, or
``/proc -> /``); host-side code that writes into a CT tree, and the child that mounts
/proc and /dev into it, must resolve every path *inside* the CT's root.  Here that is
``openat2(2)`` with ``RESOLVE_IN_ROOT`` (absolute links and ``..`` stay inside the root)
and ``RESOLVE_NO_MAGICLINKS``; on kernels without openat2 every component is opened with
``O_NOFOLLOW`` and links are refused.  Files are replaced by writing a temporary file in
the resolved directory and renaming it over the name, which replaces a planted link
instead of following it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vzcore.errors import KernelError
from vzcore.linux import libc, mounts

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_have_openat2: bool | None = None


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def open_root(path: str | os.PathLike[str]) -> int:
    """Open a CT root directory as an ``O_PATH`` descriptor (close it with ``os.close``)."""
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """Open ``path`` as seen from inside the tree at ``root_fd``; the last component is
    followed only when ``flags`` lacks ``O_NOFOLLOW`` (and then only inside the root)."""
    global _have_openat2
    flags |= os.O_CLOEXEC
    relative = "/".join(_split(path)) or "."
    if _have_openat2 is not False:
        how = _OpenHow(flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        fd = libc.syscall("openat2", ctypes.c_int(root_fd), relative.encode(),
                          ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            _have_openat2 = True
            return fd
        err = ctypes.get_errno()
        if err != errno.ENOSYS:
            raise KernelError("open inside CT root", path, err)
        _have_openat2 = False
    return _open_nofollow_walk(root_fd, relative, flags, mode)


def _open_nofollow_walk(root_fd: int, relative: str, flags: int, mode: int) -> int:
    parts = _split(relative)
    current = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            if part == "..":
                raise KernelError("open inside CT root", relative, errno.EPERM)
            nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=current)
            os.close(current)
            current = nxt
        if not parts:
            return os.open(".", flags, mode, dir_fd=current)
        return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=current)
    except OSError as exc:
        raise KernelError("open inside CT root", relative, exc.errno or 0) from exc
    finally:
        os.close(current)


@contextmanager
def opened(root_fd: int, path: str, flags: int, mode: int = 0) -> Iterator[int]:
    fd = open_in(root_fd, path, flags, mode)
    try:
        yield fd
    finally:
        os.close(fd)


def makedirs(root_fd: int, path: str, mode: int = 0o755,
             owner: tuple[int, int] | None = None) -> None:
    """``mkdir -p path`` inside the root.  Existing links are followed inside the root (as
    the CT itself would see the path); an existing non-directory is refused.  Directories
    made here are given to ``owner`` (host uid, gid) when one is passed."""
    try:  # the usual case at start: it exists (one lookup instead of a walk)
        os.close(open_in(root_fd, path, os.O_PATH | os.O_DIRECTORY))
        return
    except KernelError:
        pass  # the walk makes what is missing, or names the component that is in the way
    done = ""
    for part in _split(path):
        parent = done or "."
        with opened(root_fd, parent, os.O_PATH | os.O_DIRECTORY) as parent_fd:
            try:
                os.mkdir(part, mode, dir_fd=parent_fd)
                if owner is not None:
                    os.chown(part, *owner, dir_fd=parent_fd, follow_symlinks=False)
            except FileExistsError:
                pass
        done = f"{done}/{part}"
        try:
            os.close(open_in(root_fd, done, os.O_PATH | os.O_DIRECTORY))
        except KernelError as exc:
            raise KernelError("mkdir inside CT root", done, exc.errno) from None


def write_file(root_fd: int, path: str, data: bytes, mode: int = 0o644,
               owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` inside the root with ``data`` atomically, never through a link."""
    parts = _split(path)
    if not parts:
        raise KernelError("write inside CT root", path, errno.EISDIR)
    directory, name = "/".join(parts[:-1]) or ".", parts[-1]
    with opened(root_fd, directory, os.O_PATH | os.O_DIRECTORY) as dir_fd:
        tmp = f".{name}.vztmp{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         mode, dir_fd=dir_fd)
        except FileExistsError:
            os.unlink(tmp, dir_fd=dir_fd)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         mode, dir_fd=dir_fd)
        try:
            try:
                view = memoryview(data)
                while view:  # a short write (a full disk, a quota) must not cut the file
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode)
                if owner is not None:
                    os.fchown(fd, *owner)
            finally:
                os.close(fd)
        except BaseException:
            os.unlink(tmp, dir_fd=dir_fd)  # the old file stays as it was
            raise
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def read_file(root_fd: int, path: str, limit: int = 16 << 20) -> bytes:
    """The whole of a regular file inside the root (links resolved inside it).  Anything
    else (a FIFO or device the CT planted) raises :class:`KernelError` (``EINVAL``), and
    so does a file longer than ``limit`` bytes (``EFBIG``): a caller that rewrites the
    file must never get a truncated copy."""
    with opened(root_fd, path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK) as fd:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise KernelError("read inside CT root", path, errno.EINVAL)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # to the end, whatever fstat said (the CT may append)
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        raise KernelError(f"read (longer than {limit >> 20} MiB) inside CT root", path, errno.EFBIG)


def mount_at(root_fd: int, path: str, source: str | None, fstype: str | None, flags: int = 0,
             data: str | None = None, *, kind: str = "dir") -> None:
    """Mount on ``path`` inside the root, creating it (a directory, or an empty file when
    ``kind == "file"``).  The mount goes to the resolved object through
    ``/proc/self/fd``, so a link swapped in between check and mount is not followed
    (runc CVE-2021-30465)."""
    parts = _split(path)
    if kind == "dir":
        makedirs(root_fd, path)
    else:
        makedirs(root_fd, "/".join(parts[:-1]))
        with opened(root_fd, "/".join(parts[:-1]) or ".", os.O_PATH | os.O_DIRECTORY) as dir_fd:
            try:
                os.close(os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o644, dir_fd=dir_fd))
            except FileExistsError:
                pass
    with opened(root_fd, path, os.O_PATH | os.O_NOFOLLOW) as target:
        st = os.fstat(target)
        expected = stat.S_ISDIR if kind == "dir" else (lambda m: not stat.S_ISDIR(m) and not stat.S_ISLNK(m))
        if not expected(st.st_mode):
            raise KernelError(f"mount {fstype or source} on", path, errno.ENOTDIR)
        mounts.mount(source, f"/proc/self/fd/{target}", fstype, flags, data)


def bind_in_place(root_fd: int, path: str, *, recursive: bool = True) -> None:
    """Bind ``path`` inside the root onto itself, so that its flags can change alone."""
    with opened(root_fd, path, os.O_PATH | os.O_NOFOLLOW) as target:
        proc_path = f"/proc/self/fd/{target}"
        mounts.mount(proc_path, proc_path, None, mounts.MS_BIND | (mounts.MS_REC if recursive else 0))


def remount_at(root_fd: int, path: str, flags: int, *, clear: int = 0) -> None:
    """Change the flags of the bind mount on ``path`` inside the root: add ``flags``, keep
    the other current ones except ``clear`` (``MS_RDONLY`` to make it writable)."""
    with opened(root_fd, path, os.O_PATH | os.O_NOFOLLOW) as target:
        proc_path = f"/proc/self/fd/{target}"
        current = mounts.statvfs_flags(proc_path) & ~clear
        mounts.mount(None, proc_path, None, mounts.MS_REMOUNT | mounts.MS_BIND | current | flags)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """``rm -rf path`` without following links and without entering other file systems.

    Nothing is removed while anything is mounted below ``path`` (a bind mount of a host
    directory has the same device number, so the device check alone would miss it), and a
    directory on another device is never descended into: the error names it.
    """
    busy = mounts.mounts_below(path)
    if busy:
        raise KernelError("remove (another file system is mounted at)", ", ".join(busy), errno.EBUSY)
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        device = os.fstat(top).st_dev
        _empty_directory(top, device, os.fspath(path))
    finally:
        os.close(top)
    os.rmdir(path)


def _empty_directory(dir_fd: int, device: int, where: str) -> None:
    with os.scandir(dir_fd) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in names:
        if is_dir:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=dir_fd)
            try:
                if os.fstat(child).st_dev != device:
                    raise KernelError("remove (another file system is mounted at)",
                                      f"{where}/{name}", errno.EXDEV)
                _empty_directory(child, device, f"{where}/{name}")
            finally:
                os.close(child)
            os.rmdir(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)


def shift_ownership(path: str | os.PathLike[str], uid_of: Callable[[int], int],
                    gid_of: Callable[[int], int]) -> None:
    """Change every owner below ``path`` (included) through ``uid_of``/``gid_of``, without
    following links or entering other file systems (a user namespace's ID shift)."""
    top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(top)
        os.chown(top, uid_of(st.st_uid), gid_of(st.st_gid))
        os.chmod(top, stat.S_IMODE(st.st_mode))  # chown cleared set-id bits
        _shift_directory(top, st.st_dev, uid_of, gid_of)
    finally:
        os.close(top)


def _shift_directory(dir_fd: int, device: int, uid_of: Callable[[int], int],
                     gid_of: Callable[[int], int]) -> None:
    with os.scandir(dir_fd) as entries:
        names = [e.name for e in entries]
    for name in names:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if st.st_dev != device:
            continue
        os.chown(name, uid_of(st.st_uid), gid_of(st.st_gid), dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=dir_fd)
            try:
                _shift_directory(child, device, uid_of, gid_of)
            finally:
                os.close(child)
        elif stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:  # chown clears set-id bits; put them back
                os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode))
            finally:
                os.close(fd)
