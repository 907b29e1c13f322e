"""A CT's file tree as the distribution actions see it: every read and write goes
through :mod:`vzcore.linux.safefs`, so a link the CT planted (``/etc/hosts ->
/etc/shadow`` of the host) resolves inside the CT's root, and a write replaces the link
with a regular file instead of following it."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vzcore.errors import KernelError, VzError
from vzcore.linux import safefs

READ_LIMIT = 16 << 20
"""The largest file an action rewrites; a larger one is refused, whole."""

PWD_LOCK = "etc/.pwd.lock"
PWD_LOCK_WAIT = 15.0
"""Seconds to wait for the CT's password-file lock, as glibc's lckpwdf(3) does."""


class CtTree:
    """The CT root ``root`` (a host path) open as a directory descriptor; new files belong
    to ``owner``, the host IDs of the CT's root.  Use as a context manager."""

    def __init__(self, root: Path, *, ctid: int, owner: tuple[int, int]) -> None:
        self.root = root
        self.ctid = ctid
        self.owner = owner
        try:
            self.fd = safefs.open_root(root)
        except OSError as exc:
            raise VzError(f"CT {ctid}: cannot open its root {root}: {exc.strerror}") from exc

    def __enter__(self) -> CtTree:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)

    def read(self, path: str) -> str | None:
        """The text of ``path`` (relative to the root); ``None`` when it is missing or not
        a regular file (an action then writes it anew)."""
        try:
            data = safefs.read_file(self.fd, path, READ_LIMIT)
        except KernelError as exc:
            if exc.errno == errno.EFBIG:
                raise VzError(f"CT {self.ctid}: /{path} in the CT is larger than "
                              f"{READ_LIMIT >> 20} MiB, so it is not rewritten; shrink it "
                              "inside the CT") from None
            return None
        # surrogateescape: bytes that are not UTF-8 are written back as they were
        return data.decode(errors="surrogateescape")

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists inside the CT (links on the way resolved inside it; the
        last one itself counts, as an enabled unit's link does)."""
        try:
            with safefs.opened(self.fd, path, os.O_PATH | os.O_NOFOLLOW):
                return True
        except (KernelError, OSError):
            return False

    def kept_mode(self, path: str, default: int) -> tuple[int, tuple[int, int]]:
        """(mode, owner) of the existing regular file ``path``, else ``default`` and the
        CT root's IDs: a rewrite keeps a file's permissions (``/etc/shadow`` 0640
        root:shadow)."""
        try:
            with safefs.opened(self.fd, path, os.O_PATH) as fd:
                st = os.fstat(fd)
        except (KernelError, OSError):
            return default, self.owner
        if not stat.S_ISREG(st.st_mode):
            return default, self.owner
        return stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)

    def write(self, path: str, text: str, mode: int = 0o644) -> bool:
        """Replace ``path`` with ``text`` unless it already holds exactly that (so an action
        run twice changes nothing); its directory is made.  Returns whether it wrote."""
        if self.read(path) == text:
            return False
        directory = path.rpartition("/")[0]
        try:
            if directory:
                safefs.makedirs(self.fd, directory)
            mode, owner = self.kept_mode(path, mode)
            safefs.write_file(self.fd, path, text.encode(errors="surrogateescape"), mode=mode,
                              owner=owner)
        except KernelError as exc:
            raise VzError(f"CT {self.ctid}: cannot write /{path} in the CT: {exc}") from exc
        return True

    def makedirs(self, path: str) -> None:
        """Make the directory ``path`` and its parents inside the CT (kept if present)."""
        try:
            safefs.makedirs(self.fd, path)
        except KernelError as exc:
            raise VzError(f"CT {self.ctid}: cannot make /{path} in the CT: {exc}") from exc

    def remove(self, path: str) -> bool:
        """Remove the file ``path`` (never a directory; a link itself, not its target)."""
        directory, _, name = path.rpartition("/")
        try:
            with safefs.opened(self.fd, directory or ".", os.O_PATH | os.O_DIRECTORY) as dir_fd:
                os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        except (KernelError, OSError) as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return False
            raise VzError(f"CT {self.ctid}: cannot remove /{path} in the CT: {exc}") from exc
        return True

    def listdir(self, path: str) -> list[str]:
        """Names in the directory ``path``; empty when it is missing."""
        try:
            with safefs.opened(self.fd, path, os.O_RDONLY | os.O_DIRECTORY) as dir_fd:
                return os.listdir(dir_fd)
        except (KernelError, OSError):
            return []

    @contextmanager
    def password_lock(self) -> Iterator[None]:
        """Hold the CT's ``/etc/.pwd.lock`` as lckpwdf(3) does (passwd, chpasswd, useradd
        inside the CT take it too), so a change from the host never interleaves with one
        made inside."""
        try:
            fd = safefs.open_in(self.fd, PWD_LOCK, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
                                | os.O_CLOEXEC, 0o600)
        except (KernelError, OSError) as exc:
            raise VzError(f"CT {self.ctid}: cannot open /{PWD_LOCK} in the CT: {exc}") from exc
        try:
            if os.fstat(fd).st_uid != self.owner[0] and os.fstat(fd).st_size == 0:
                os.fchown(fd, *self.owner)  # made just now: it is the CT root's file
            deadline = time.monotonic() + PWD_LOCK_WAIT
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                        raise VzError(f"CT {self.ctid}: the CT's password files are locked "
                                      f"(/{PWD_LOCK}, held by passwd or useradd inside?); "
                                      "try again when that finishes") from exc
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)
