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
snapshot left out is still found below.  With it a ``vzctl`` call costs 2-5 s.
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

import attrs

ROOT_DISTRIBUTIONS = ("vzcore", "pytest")
"""Distributions the guest always needs; plugins of these entry-point groups are added."""
PLUGIN_GROUPS = ("vzcore.plugins", "pytest11")
SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "node_modules"})
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
        if key in found:
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


def _tree(top: Path, skip_hidden: bool) -> Iterator[Path]:
    """Every file below ``top`` except bytecode caches, nested package directories and
    (with ``skip_hidden``) hidden directories such as ``.git`` and ``.venv``."""
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("config-")
                         and not (skip_hidden and d.startswith(".")))
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
        for path in _tree(stdlib, skip_hidden=False):
            writer.add(name, stdlib, path)
        for dist in _distribution_closure():
            for file in dist.files or ():
                path = Path(str(dist.locate_file(file))).resolve()
                root = _root_of(path, roots)
                if root is not None and root != stdlib:
                    writer.add(layer_of(root), root, path)
        project = project.resolve()
        name = layer_of(project)
        for path in _tree(project, skip_hidden=True):
            writer.add(name, project, path)
    ordered = sorted(layers.items(), key=lambda item: len(item[0].parts))
    return [Layer(name, str(target)) for target, name in ordered]
