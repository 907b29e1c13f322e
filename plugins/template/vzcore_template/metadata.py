"""The metadata file beside each cached template: ``NAME.json`` next to ``NAME.tar.zst``.

A JSON object (see docs/templates.md)::

    {"format": 1, "name": "debian-12-x86_64-minimal", "distribution": "debian",
     "version": "12", "suite": "bookworm", "architecture": "x86_64", "flavour": "minimal",
     "init": "systemd", "packages": ["cron", ...], "mirror": "http://deb.debian.org/debian",
     "created": "2026-12-06T06:30:00Z", "size": 87654321, "tarball": "....tar.zst",
     "builder": "vzcore-template 0.1.0 recipe 1", "recipe": "sha256 of what was asked"}

``size`` is the tarball's size in bytes; ``recipe`` identifies the request (distribution,
flavour, init, packages, mirror, builder): a ``template create --reuse`` with the same
recipe keeps the cache.  Caches made elsewhere (OpenVZ's precreated ones) have no
metadata file: they are listed with what their name says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

FORMAT = 1
SUFFIX = ".json"


@attrs.frozen(kw_only=True)
class Metadata:
    name: str
    distribution: str
    version: str
    architecture: str
    flavour: str
    init: str
    packages: tuple[str, ...] = attrs.field(converter=tuple[str, ...])
    suite: str = ""
    mirror: str = ""
    created: str = ""
    size: int = 0
    tarball: str = ""
    builder: str = ""
    recipe: str = ""

    def to_json(self) -> dict[str, Any]:
        data = {"format": FORMAT, **attrs.asdict(self)}
        data["packages"] = list(self.packages)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metadata:
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def path_for(cache_dir: Path, name: str) -> Path:
    return cache_dir / f"{name}{SUFFIX}"


def load(cache_dir: Path, name: str) -> Metadata | None:
    """The metadata of ``name``; None when there is none or it is unreadable (a cache
    from elsewhere, or a file an interrupted write left: both list without details)."""
    try:
        data = json.loads(path_for(cache_dir, name).read_text())
        return Metadata.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def write(path: Path, metadata: Metadata) -> None:
    """Write ``path`` durably (a temporary file renamed over it)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as f:
        json.dump(metadata.to_json(), f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
