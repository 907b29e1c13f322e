"""A snapshot of the Python code the tests run, for a guest that sees this host over 9p.

vm-run shares the host's file system with the guest over 9p without caching, under
software emulation: every ``stat`` and ``open`` is a round trip that costs milliseconds,
and one ``vzctl`` invocation (a Python start-up with a few hundred such look-ups) took
15-40 s in the guest.  So the host packs the code the tests run into one tar file: the
standard library, the distributions the tests need (vzcore, every vzcore plugin, pytest
and every pytest plugin, and their requirements), and the project tree with compiled
bytecode.  The guest unpacks it into tmpfs and mounts each part as the lower layer of an
overlay *on the original path*, above the 9p directory: paths stay the same (editable
installs, ``sys.executable``, tracebacks), reads come from memory, and anything the
snapshot left out is still found below.  With it a ``vzctl`` call costs 2-8 s, and
unpacking the snapshot (about 35 MB) about 10 s.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import py_compile
import re
import site
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

import attrs

ROOT_DISTRIBUTIONS = ("vzcore", "pytest")
"""Distributions the guest always needs; plugins of these entry-point groups are added."""
PLUGIN_GROUPS = ("vzcore.plugins", "pytest11")
SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "node_modules"})
STDLIB_UNUSED = frozenset({"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "pydoc_data",
                           "ensurepip", "distutils"})
"""Parts of the standard library that no test run imports."""
UNUSED_DISTRIBUTIONS = frozenset({"pygments"})
"""Required but not imported in the guest: pytest colours source with it only on a terminal.
(The guest unpacks the snapshot under emulation, at about 1 s per MB: a quarter of it was
this.)"""
MAX_FILE_SIZE = 8 << 20
"""Bigger files stay out of the snapshot (the guest reads them over 9p if it needs them)."""


@attrs.frozen
class Layer:
    """One directory of the snapshot: ``name/`` in the tar file goes over ``target``."""

    name: str
    target: str


def _distribution_closure() -> list[metadata.Distribution]:
    """vzcore, pytest, their plugins, and everything they require (no extras)."""
    from packaging.requirements import InvalidRequirement, Requirement

    wanted = list(ROOT_DISTRIBUTIONS)
    for group in PLUGIN_GROUPS:
        wanted.extend(ep.dist.name for ep in metadata.entry_points(group=group) if ep.dist)
    found: dict[str, metadata.Distribution] = {}
    while wanted:
        name = wanted.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement that is not installed
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found or key in UNUSED_DISTRIBUTIONS:
            continue
        found[key] = dist
        for text in dist.requires or ():
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return list(found.values())


def _path_roots() -> list[Path]:
    """The ``sys.path`` directories, longest first (so a file maps to its closest root)."""
    roots = {Path(p).resolve() for p in sys.path if p and os.path.isdir(p)}
    return sorted(roots, key=lambda p: len(p.parts), reverse=True)


def _root_of(path: Path, roots: Iterable[Path]) -> Path | None:
    for root in roots:
        if path.is_relative_to(root):
            return root
    return None


def _tree(top: Path, skip_hidden: bool, skip: frozenset[str] = frozenset()) -> Iterator[Path]:
    """Every file below ``top`` except bytecode caches, nested package directories, the
    directories named in ``skip`` (at the top) and (with ``skip_hidden``) hidden directories
    such as ``.git`` and ``.venv``."""
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("config-")
                         and not (skip_hidden and d.startswith("."))
                         and not (root == str(top) and d in skip))
        for name in sorted(files):
            yield Path(root, name)


class _Writer:
    """Adds files to the tar file, with up-to-date bytecode for every ``.py``."""

    def __init__(self, tar: tarfile.TarFile, scratch: Path) -> None:
        self.tar = tar
        self.scratch = scratch
        self.seen: set[str] = set()

    def add(self, layer: str, base: Path, path: Path) -> None:
        try:
            if not path.is_file() or path.stat().st_size > MAX_FILE_SIZE:
                return
        except OSError:
            return
        arcname = f"{layer}/{path.relative_to(base)}"
        if arcname in self.seen:
            return
        self.seen.add(arcname)
        self.tar.add(path, arcname=arcname, recursive=False)
        if path.suffix == ".py":
            self._add_bytecode(layer, base, path)

    def add_text(self, arcname: str, text: str) -> None:
        """A generated file (it takes the place of a host file of the same name)."""
        self.seen.add(arcname)
        data = text.encode()
        info = tarfile.TarInfo(arcname)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def _add_bytecode(self, layer: str, base: Path, source: Path) -> None:
        cached = Path(importlib.util.cache_from_source(str(source)))
        arcname = f"{layer}/{cached.relative_to(base)}"
        if arcname in self.seen:
            return
        self.seen.add(arcname)
        try:
            fresh = cached.stat().st_mtime >= source.stat().st_mtime
        except OSError:
            fresh = False
        if fresh:
            self.tar.add(cached, arcname=arcname, recursive=False)
            return
        # The host may run with PYTHONDONTWRITEBYTECODE: compile into the snapshot only.
        compiled = self.scratch / "module.pyc"
        try:
            py_compile.compile(str(source), cfile=str(compiled), doraise=True)
        except py_compile.PyCompileError:
            return
        self.tar.add(compiled, arcname=arcname, recursive=False)


_EDITABLE_PTH = re.compile(r"import (__editable___\w+_finder); \1\.install\(\)\s*")
GUEST_FINDER = '''"""The editable installs of the host's venv, found without setuptools' finders.

Generated by vzcore.testing.snapshot for the guest only: the same top-level names map to
the same directories, but nothing is imported for it at start-up (each setuptools finder
imported pathlib, re and more: about a second per Python process in the guest).
"""
import sys
from importlib.machinery import PathFinder

MAPPING = {mapping!r}


class _Finder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        where = MAPPING.get(fullname)
        return None if where is None else PathFinder.find_spec(fullname, [where])


sys.meta_path.append(_Finder)
'''


def _shortcut_editables(writer: _Writer, layer: str, site: Path) -> None:
    """Replace, in the snapshot, the ``.pth`` files of setuptools' editable installs in
    ``site`` with one cheap finder of the same mapping (those it does not understand stay)."""
    mapping: dict[str, str] = {}
    for pth in sorted(site.glob("__editable__*.pth")):
        match = _EDITABLE_PTH.fullmatch(pth.read_text())
        if not match:
            continue
        try:
            finder = importlib.import_module(match.group(1))
        except ImportError:
            continue
        names = getattr(finder, "MAPPING", {})
        spaces = getattr(finder, "NAMESPACES", {})
        if any("." in name for name in names) or any(  # namespaces outside its packages
                not any(p.startswith(root + "/") for root in names.values() for p in paths)
                for paths in spaces.values()):
            continue
        mapping.update({name: os.path.dirname(root) for name, root in names.items()
                        if os.path.basename(root) == name})
        writer.add_text(f"{layer}/{pth.name}", "")
    if mapping:
        writer.add_text(f"{layer}/_vz_guest_editables.py", GUEST_FINDER.format(mapping=mapping))
        writer.add_text(f"{layer}/_vz_guest_editables.pth", "import _vz_guest_editables\n")


def build(tar_path: Path, project: Path) -> list[Layer]:
    """Write the snapshot of the standard library, the needed distributions and
    ``project`` to ``tar_path``; return its layers, parents before children."""
    layers: dict[Path, str] = {}

    def layer_of(target: Path) -> str:
        return layers.setdefault(target, f"layer{len(layers)}")

    roots = _path_roots()
    with tempfile.TemporaryDirectory(prefix="vzcore-snapshot-") as scratch, \
            tarfile.open(tar_path, "w") as tar:
        writer = _Writer(tar, Path(scratch))
        stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
        name = layer_of(stdlib)
        for path in _tree(stdlib, skip_hidden=False, skip=STDLIB_UNUSED):
            writer.add(name, stdlib, path)
        for site_dir in sorted({Path(p).resolve() for p in site.getsitepackages()
                                if os.path.isdir(p)}):
            _shortcut_editables(writer, layer_of(site_dir), site_dir)
        for dist in _distribution_closure():
            for file in dist.files or ():
                path = Path(str(dist.locate_file(file))).resolve()
                root = _root_of(path, roots)
                if root is not None and root != stdlib:
                    writer.add(layer_of(root), root, path)
        # Console scripts run with their directory first on sys.path: every import looks
        # there first, so it must not be a 9p directory.
        scripts = Path(sysconfig.get_paths()["scripts"])
        name = layer_of(scripts)
        for path in sorted(scripts.iterdir()):
            writer.add(name, scripts, path)
        project = project.resolve()
        name = layer_of(project)
        for path in _tree(project, skip_hidden=True):
            writer.add(name, project, path)
    ordered = sorted(layers.items(), key=lambda item: len(item[0].parts))
    return [Layer(name, str(target)) for target, name in ordered]
