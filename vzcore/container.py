"""A container as the host knows it: its ID, config, and where its files are."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from vzcore.conffile import ConfigFile
from vzcore.errors import ConfigError, CtConfigMissing, InvalidSyntax
from vzcore.idmap import IdMap
from vzcore.paths import DEFAULTS, Paths, expand_veid

MAX_CTID = 2147483644
FIRST_USER_CTID = 101
"""OpenVZ reserves IDs up to 100 for itself; 0 is the host."""
HOST_CTID = 0
"""CT 0 is the host itself: ``vzctl set 0`` changes the host's own settings (VE0CPUUNITS)."""


def parse_ctid(text: str) -> int:
    """A CTID from the command line; malformed IDs are refused with the fix."""
    if not re.fullmatch(r"\d{1,10}", text.strip()):
        raise InvalidSyntax(f"invalid CT ID {text!r}: a CT ID is a number from "
                            f"{FIRST_USER_CTID} to {MAX_CTID}")
    ctid = int(text)
    if ctid > MAX_CTID:
        raise InvalidSyntax(f"invalid CT ID {text!r}: the largest CT ID is {MAX_CTID}")
    return ctid


@attrs.define
class Container:
    """One CT: ``config`` is its ``CTID.conf`` (empty if the CT does not exist), read over
    the defaults in ``vz.conf`` (any CT parameter may appear there as a default)."""

    ctid: int
    paths: Paths
    global_config: ConfigFile
    config: ConfigFile

    @classmethod
    def load(cls, ctid: int, paths: Paths, global_config: ConfigFile) -> Container:
        return cls(ctid, paths, global_config,
                   ConfigFile.load(paths.ct_conf(ctid), missing_ok=True))

    @property
    def is_host(self) -> bool:
        """True for CT 0, the host itself (it has no CTID.conf; its keys live in vz.conf)."""
        return self.ctid == HOST_CTID

    @property
    def exists(self) -> bool:
        return self.config.path.exists()

    def require_exists(self) -> None:
        if not self.exists:
            raise CtConfigMissing(
                f"CT {self.ctid} does not exist: no {self.config.path}; "
                f"create it with 'vzctl create {self.ctid} --ostemplate NAME'"
            )

    def get(self, key: str, default: str | None = None) -> str | None:
        """The CT's value of ``key``, else vz.conf's, else ``default``."""
        value = self.config.get(key)
        if value is None:
            value = self.global_config.get(key)
        return default if value is None else value

    def _path(self, key: str) -> Path:
        return self.paths.host(expand_veid(self.get(key) or DEFAULTS[key], self.ctid))

    @property
    def private(self) -> Path:
        """Host path of the private area (``VE_PRIVATE``, default ``/vz/private/CTID``)."""
        return self._path("VE_PRIVATE")

    @property
    def root(self) -> Path:
        """Host path of the root mount point (``VE_ROOT``, default ``/vz/root/CTID``)."""
        return self._path("VE_ROOT")

    @property
    def layout(self) -> str:
        return self.get("VE_LAYOUT") or "simfs"

    @property
    def idmap(self) -> IdMap | None:
        """The CT's user-namespace ID map, ``None`` for a privileged CT (``LOCAL_UID=0``).

        Read from the CT's own config only: the range is chosen at create and the private
        area's files are owned accordingly, so a vz.conf default must not apply later.
        """
        uid = self.config.get("LOCAL_UID")
        if uid is None or uid.strip() in ("", "0"):
            return None
        gid = self.config.get("LOCAL_GID") or uid
        try:
            return IdMap(int(uid), int(gid))
        except ValueError as exc:
            raise ConfigError(f"CT {self.ctid}: LOCAL_UID={uid!r} LOCAL_GID={gid!r} in "
                              f"{self.config.path}: {exc}") from None

    @property
    def root_owner(self) -> tuple[int, int]:
        """Host (uid, gid) that the CT's root is: the owner of files the host writes for it."""
        idmap = self.idmap
        return idmap.root if idmap else (0, 0)

    @property
    def hostname(self) -> str | None:
        return self.get("HOSTNAME")
