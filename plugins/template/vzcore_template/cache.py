"""The template cache directory, ``$TEMPLATE/cache`` (``TEMPLATE`` in vz.conf, default
``/vz/template``): its tarballs, their metadata, the builds under way, and which CTs use
which template.

Layout (``NAME`` = ``debian-12-x86_64-minimal``)::

    NAME.tar.zst          the template (or .tar, .tar.gz, .tgz, .tar.xz, .tar.bz2)
    NAME.json             its metadata (vzcore_template.metadata), for templates vzctl built
    .NAME.lock            held (flock) while NAME is built or removed
    .build-NAME/          a build under way: root/, debootstrap.log, the packed tarball

A build killed at any point leaves at most ``.build-NAME/``: the next ``template create``
or ``template remove`` of NAME (which take the same lock) removes it.  The tarball is
renamed into place last, so it is either whole or absent.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from vzcore.errors import Locked
from vzcore.linux import safefs
from vzcore.paths import DEFAULTS, Paths
from vzcore_template import metadata
from vzcore_template.metadata import Metadata
from vzcore_template.tarball import SUFFIXES


def cache_dir(paths: Paths, template: str | None = None) -> Path:
    """``$TEMPLATE/cache`` of an installation (``template``: vz.conf's ``TEMPLATE``)."""
    return paths.host(template or DEFAULTS["TEMPLATE"]) / "cache"


def template_setting(paths: Paths) -> str | None:
    from vzcore.conffile import ConfigFile

    return ConfigFile.load(paths.vz_conf, missing_ok=True).get("TEMPLATE")


@attrs.frozen
class Cached:
    """One template in the cache."""

    name: str
    tarball: Path
    size: int
    mtime: float
    meta: Metadata | None


def split_name(filename: str) -> str | None:
    """``NAME`` of a tarball's file name, or None if it is not one."""
    if filename.startswith("."):
        return None
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None


def templates(directory: Path) -> list[Cached]:
    """Every cached template, by name (the first suffix in OpenVZ's order wins)."""
    found: dict[str, Cached] = {}
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        name = split_name(path.name)
        if name is None or not path.is_file():
            continue
        st = path.stat()
        candidate = Cached(name, path, st.st_size, st.st_mtime, None)
        previous = found.get(name)
        if previous is None or (SUFFIXES.index(path.name[len(name):])
                                < SUFFIXES.index(previous.tarball.name[len(name):])):
            found[name] = candidate
    return sorted((attrs.evolve(c, meta=valid_metadata(directory, c.name)) for c in found.values()),
                  key=lambda c: c.name)


def tarballs(directory: Path, name: str) -> list[Path]:
    """Every tarball of ``name`` (a name may have several suffixes)."""
    return [directory / f"{name}{suffix}" for suffix in SUFFIXES
            if (directory / f"{name}{suffix}").is_file()]


def build_dir(directory: Path, name: str) -> Path:
    return directory / f".build-{name}"


@contextmanager
def locked(directory: Path, name: str) -> Iterator[bool]:
    """Hold ``.NAME.lock``: one create or remove of a name at a time, and then remove
    what a killed build of it left (yields whether there was anything)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Locked(f"template {name} is being built or removed by another vzctl; "
                         "wait for it to finish") from None
        yield remove_leftovers(directory, name)
    finally:
        os.close(fd)


def valid_metadata(directory: Path, name: str) -> Metadata | None:
    """The metadata of ``name`` if it describes the tarball that is there (its file name
    and size), else None."""
    meta = metadata.load(directory, name)
    present = tarballs(directory, name)
    if meta is None or not present:
        return None
    if meta.tarball != present[0].name or meta.size != present[0].stat().st_size:
        return None
    return meta


def finish_commit(directory: Path, name: str) -> bool:
    """Complete a build whose tarball was renamed into the cache: move its staged metadata
    in, remove the previous tarballs of other suffixes and the build directory.  True if
    there was such a build (a kill after the commit point is rolled forward here)."""
    workdir = build_dir(directory, name)
    staged = workdir / f"{name}{metadata.SUFFIX}"
    meta = metadata.load(workdir, name) if staged.exists() else None
    if meta is None or (workdir / meta.tarball).exists():
        return False
    committed = directory / meta.tarball
    if not committed.is_file() or committed.stat().st_size != meta.size:
        return False
    os.replace(staged, metadata.path_for(directory, name))
    for other in tarballs(directory, name):
        if other != committed:
            other.unlink()
    safefs.remove_tree(workdir)
    return True


def remove_leftovers(directory: Path, name: str) -> bool:
    """Remove what an interrupted build of ``name`` left, or complete it if it was killed
    after its commit point (call with the lock held).  True if there was anything."""
    if finish_commit(directory, name):
        return True
    leftover = build_dir(directory, name)
    removed = leftover.exists()
    safefs.remove_tree(leftover)
    for suffix in (metadata.SUFFIX, *SUFFIXES):
        temporary = directory / f".{name}{suffix}.tmp"
        if temporary.exists():
            temporary.unlink()
            removed = True
    orphan = metadata.path_for(directory, name)  # its tarball removed by hand
    if orphan.exists() and not tarballs(directory, name):
        orphan.unlink()
        removed = True
    return removed


def has_anything_of(directory: Path, name: str) -> bool:
    """Whether the cache holds a tarball, metadata or leftovers of ``name``."""
    candidates = [metadata.path_for(directory, name), build_dir(directory, name),
                  *(directory / f".{name}{suffix}.tmp" for suffix in (metadata.SUFFIX, *SUFFIXES))]
    return bool(tarballs(directory, name)) or any(p.exists() for p in candidates)


def users(paths: Paths, name: str) -> list[int]:
    """The CTs whose config says ``OSTEMPLATE=name``."""
    from vzcore.conffile import ConfigFile

    found = []
    for conf in sorted(paths.conf_dir.glob("*.conf")) if paths.conf_dir.is_dir() else []:
        if not conf.stem.isdigit():
            continue
        try:
            if ConfigFile.load(conf).get("OSTEMPLATE") == name:
                found.append(int(conf.stem))
        except Exception:  # an unreadable config: not this command's to report
            continue
    return sorted(found)
