"""Where a CT's private area and root mount point may be, and vzcore's mark on the private
areas it made.

``VE_PRIVATE`` and ``VE_ROOT`` come from config files, and ``destroy`` removes what
``VE_PRIVATE`` names, so a damaged config must not reach anything but the CT's own area:

* a path is absolute, without ``..``, and lies strictly below the fixed base directory of
  vz.conf's pattern (``/vz/private`` for ``/vz/private/$VEID``) or of OpenVZ's default
  pattern (CTs made before vz.conf's pattern changed stay usable);
* it is never ``/``, a system directory (:data:`SYSTEM_DIRS`, as written relative to the
  prefix and as resolved on the host), the prefix or one of its ancestors, and never
  overlaps a directory of vzcore's own (configs, state, locks, templates);
* it overlaps no other CT's area (equal, inside or containing).

The mark is the extended attribute :data:`MARKER` (``trusted.vzcore.ctid``) on the private
area's top directory, holding the CT ID; ``vzctl create`` sets it.  ``trusted.*``
attributes are out of reach of everything but ``CAP_SYS_ADMIN`` of the host's user
namespace: an unprivileged CT's root can neither see, remove nor forge it, although the
directory is its ``/``.  It survives a partial removal (the top directory goes last) and
travels with ``cp -a`` (as root).

The checks here are pure functions of path texts; :mod:`vzcore.lifecycle.areas` gathers
the texts of the CT, vz.conf and the other CTs and applies them.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from vzcore.errors import CreateError, KernelError

MARKER = "trusted.vzcore.ctid"

SYSTEM_DIRS = frozenset({
    "/bin", "/boot", "/dev", "/etc", "/home", "/media", "/mnt", "/opt", "/proc", "/root",
    "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/lost+found", "/snap",
    "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
    "/usr/local", "/usr/share", "/usr/include", "/usr/src", "/var/lib", "/var/log",
    "/var/tmp", "/var/cache", "/var/spool", "/var/mail", "/var/run", "/var/lock",
    "/var/backups", "/var/opt", "/var/local", "/etc/vz",
})
"""Directories whose removal or shadowing breaks a host; ``/lib*`` is matched by name."""


def normalize(text: str) -> str | None:
    """``text`` as a clean absolute path (``//`` and ``.`` dropped), or ``None`` when it is
    relative or has a ``..`` component, which could climb out of any base."""
    if not text.startswith("/") or "\0" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/" + "/".join(parts)


def is_within(path: str, top: str) -> bool:
    """True when the normalized ``path`` is ``top`` or lies below it."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def overlaps(a: str, b: str) -> bool:
    """True when one of two normalized paths is the other or lies inside it."""
    return is_within(a, b) or is_within(b, a)


def is_system_dir(path: str) -> bool:
    """True for ``/``, a directory of :data:`SYSTEM_DIRS` and ``/lib*`` (normalized path)."""
    return (path == "/" or path in SYSTEM_DIRS
            or (path.count("/") == 1 and path[1:].startswith("lib")))


def fixed_base(pattern: str) -> str | None:
    """The directory every path of ``pattern`` lies below: its leading components up to the
    first one with a variable (``/vz/private/$VEID`` -> ``/vz/private``).  A pattern without
    a variable is one directory, so its parent is the base.  ``None`` for a pattern that is
    not a clean absolute path."""
    clean = normalize(pattern)
    if clean is None:
        return None
    parts = clean.split("/")[1:]
    fixed = []
    for part in parts:
        if "$" in part:
            break
        fixed.append(part)
    else:
        fixed = fixed[:-1]
    return "/" + "/".join(fixed)


def pattern_ctid(pattern: str, path: str) -> int | None:
    """The CT whose area ``pattern`` puts at ``path`` (``/vz/private/$VEID``,
    ``/vz/private/101`` -> 101), or ``None`` when the path is no instance of it."""
    clean_pattern, clean_path = normalize(pattern), normalize(path)
    if clean_pattern is None or clean_path is None:
        return None
    tokens = "|".join(re.escape(re.escape(t)) for t in ("${VEID}", "$VEID", "${CTID}", "$CTID"))
    pieces = re.split(tokens, re.escape(clean_pattern))
    if len(pieces) < 2:
        return None
    regex = pieces[0] + "(?P<id>[1-9][0-9]*)" + "(?P=id)".join(pieces[1:])
    match = re.fullmatch(regex, clean_path)
    return int(match.group("id")) if match else None


def config_problem(text: str, bases: Sequence[str | None]) -> str | None:
    """What is wrong with an area path as a config gives it (relative to the prefix), or
    ``None``: it must be clean, absolute, no system directory, and strictly below one of
    ``bases`` (the fixed bases of vz.conf's pattern and of OpenVZ's default; ``None`` or
    ``/`` for a pattern without one, which accepts nothing)."""
    path = normalize(text)
    if path is None:
        return "is not an absolute path without '..'"
    if is_system_dir(path):
        return "is a system directory"
    usable = list(dict.fromkeys(b for b in bases if b is not None and b != "/"))
    if not usable:
        return "cannot be checked: vz.conf's pattern for it has no fixed base directory"
    if not any(path != base and is_within(path, base) for base in usable):
        return (f"does not lie below {' or '.join(usable)}, where vz.conf's pattern (or "
                "OpenVZ's default) puts CT areas")
    return None


def host_problem(host: str, prefix: str, own_dirs: Iterable[str]) -> str | None:
    """What is wrong with an area's resolved host path, or ``None``: it must be no system
    directory of the host, not the prefix or an ancestor of it, and overlap none of
    ``own_dirs`` (vzcore's configs, state, locks, templates)."""
    if is_system_dir(host):
        return f"resolves to the system directory {host}"
    if is_within(prefix, host):
        return f"resolves to {host}, which holds the whole installation ({prefix})"
    for directory in own_dirs:
        if overlaps(host, directory):
            return f"resolves to {host}, which overlaps vzcore's own directory {directory}"
    return None


def read_marker(path: str | os.PathLike[str]) -> str | None:
    """The CT ID that vzcore's mark on the private area ``path`` names, ``None`` when the
    area has no mark (or does not exist, or its file system has no ``trusted.*``)."""
    try:
        return os.getxattr(path, MARKER, follow_symlinks=False).decode("ascii", "replace")
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOENT, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise KernelError("read the mark of private area", os.fspath(path), exc.errno or 0) from exc


def write_marker(path: str | os.PathLike[str], ctid: int) -> bool:
    """Mark the private area ``path`` as CT ``ctid``'s; ``False`` when its file system keeps
    no ``trusted.*`` attributes (the area then stays unmarked)."""
    try:
        os.setxattr(path, MARKER, str(ctid).encode(), follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise KernelError("mark private area", os.fspath(path), exc.errno or 0) from exc
    return True


def create(private: Path, ctid: int, mode: int) -> None:
    """Make CT ``ctid``'s new private area ``private`` (its parents too) with ``mode`` and
    mark it at once: a create killed while filling it leaves an area destroy removes."""
    try:
        private.parent.mkdir(parents=True, exist_ok=True)
        private.mkdir(mode=mode)
        write_marker(private, ctid)
    except OSError as exc:
        raise CreateError(f"CT {ctid}: cannot create private area {private}: "
                          f"{exc.strerror}") from exc


def is_empty_dir(path: str | os.PathLike[str]) -> bool:
    """True for an existing empty directory (removing it with rmdir can harm nothing)."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False
