"""Where vzcore-oci keeps its containers: below ``--root`` (default ``/run/vzcore-oci``).

::

    ROOT/vz/                    a vzcore installation (the VZ_ROOT prefix of the engine):
        etc/vz/vz.conf          written on first use: the plugins OCI containers use
        etc/vz/conf/CTID.conf   one CT per OCI container (made from its config.json)
        run/vz/CTID.json        the engine's state file (init's PID and start time, cgroups)
        vz/root/CTID            the bundle's rootfs, bound here while the container exists
    ROOT/c/ID/                  one directory per OCI container ID
        oci.json                ID, CTID, bundle, created (written atomically)
        config.json             the bundle's config.json as create read it
        exec.fifo               exists from create until start (runc's exec fifo)
    ROOT/ids.lck                held while an ID gets its CTID

Every change to one container holds the engine's per-CT lock (``vz/vz/lock/CTID.lck``,
an flock that dies with its holder); the ID's directory is the last thing made at create
and the first thing checked, so a create killed at any point leaves either nothing under
the ID, or a record that ``delete`` cleans from.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from vzcore.conffile import atomic_write
from vzcore.container import FIRST_USER_CTID, MAX_CTID
from vzcore.errors import InvalidSyntax, VzError
from vzcore.paths import Paths

DEFAULT_ROOT = "/run/vzcore-oci"
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.-]{0,1023}")
"""runc's container IDs: letters, digits, ``_ + . -`` (never a path)."""

DISABLED = ("actions", "dists", "lxcfs", "network", "template")
"""Plugins an OCI container does not use: the engine (podman, containerd) sets up the
network, the image is the template, and the image's files are not a distribution's to
edit."""

VZ_CONF = """\
# Written by vzcore-oci: the vzcore installation its OCI containers live in.
PLUGINS="vzcore.oci.plugin"
DISABLED_PLUGINS="{disabled}"
CGROUP_PARENT="vzcore-oci"
# An OCI container without a user namespace is runc's default (root confined by the
# spec's capabilities, seccomp profile and masked paths): vzcore's privileged profile.
ALLOW_PRIVILEGED="yes"
STOP_TIMEOUT="10"
"""


class NoSuchContainer(VzError):
    exit_code = 1


class ContainerExists(VzError):
    exit_code = 1


def check_id(text: str) -> str:
    if ID_PATTERN.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid container ID {text!r}: use letters, digits, '_', '+', "
                            "'.' and '-' (at most 1024, starting with a letter or digit)")
    return text


@attrs.frozen
class Record:
    """``oci.json``: what vzcore-oci knows of one container besides the engine's state."""

    id: str
    ctid: int
    bundle: str
    created: str
    annotations: dict[str, str] = attrs.field(factory=dict)
    owner: str = "root"


class Store:
    """The containers below one ``--root``."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.paths = Paths(self.root / "vz")

    def prepare(self) -> None:
        """Make the installation on first use (vz.conf says which plugins run)."""
        conf = self.paths.vz_conf
        text = VZ_CONF.format(disabled=" ".join(DISABLED))
        try:
            current = conf.read_text()
        except FileNotFoundError:
            current = None
        if current != text:  # first use, or written by another version of vzcore-oci
            conf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(conf, text, durable=False)
        for directory in (self.paths.conf_dir, self.paths.run_dir, self.root / "c"):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def dir(self, cid: str) -> Path:
        return self.root / "c" / check_id(cid)

    def fifo(self, cid: str) -> Path:
        return self.dir(cid) / "exec.fifo"

    def load(self, cid: str) -> Record:
        path = self.dir(cid) / "oci.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise NoSuchContainer(f"container {cid} does not exist") from None
        except (OSError, ValueError) as exc:
            raise VzError(f"container {cid}: unreadable {path}: {exc}; 'delete --force {cid}' "
                          "removes it") from None
        return Record(**data)

    def config(self, cid: str) -> Path:
        """The copy of the bundle's config.json taken at create."""
        return self.dir(cid) / "config.json"

    def save(self, record: Record) -> None:
        directory = self.dir(record.id)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(directory / "oci.json", json.dumps(attrs.asdict(record), sort_keys=True),
                     durable=False, mode=0o600)

    def ids(self) -> list[str]:
        try:
            return sorted(p.name for p in (self.root / "c").iterdir()
                          if (p / "oci.json").exists())
        except FileNotFoundError:
            return []

    @contextmanager
    def ids_lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.root / "ids.lck", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def free_ctid(self) -> int:
        """The lowest CT ID with no record, config or state (hold :meth:`ids_lock`)."""
        used: set[int] = set()
        for cid in self.ids():  # a record whose create was killed before its config
            try:
                used.add(self.load(cid).ctid)
            except VzError:
                continue
        for directory, suffix in ((self.paths.conf_dir, ".conf"), (self.paths.run_dir, ".json")):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            used.update(int(n[: -len(suffix)]) for n in names
                        if n.endswith(suffix) and n[: -len(suffix)].isdigit())
        ctid = FIRST_USER_CTID
        while ctid in used:
            ctid += 1
        if ctid > MAX_CTID:
            raise VzError("no free CT ID left for a new container")
        return ctid
