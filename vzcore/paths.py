"""Where vzcore keeps things: OpenVZ's default places, relocatable under one prefix.

Every path vzcore uses is ``prefix + the OpenVZ path``; the prefix is ``VZ_ROOT`` from the
environment (or ``vzctl --root-dir``), empty by default.  Paths read from config files
(``VE_PRIVATE="/vz/private/$VEID"``) are taken inside the same prefix, so one config
works unchanged on a real host and in a test directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

DEFAULTS = {
    "VE_ROOT": "/vz/root/$VEID",
    "VE_PRIVATE": "/vz/private/$VEID",
    "TEMPLATE": "/vz/template",
    "LOCKDIR": "/vz/lock",
}


@attrs.frozen
class Paths:
    """The host paths of one vzcore installation (a prefix and OpenVZ's layout below it)."""

    prefix: Path = attrs.field(converter=Path)

    @classmethod
    def from_environment(cls, root_dir: str | None = None) -> Paths:
        """Paths for ``root_dir``, else ``$VZ_ROOT``, else the real host (``/``)."""
        return cls(root_dir or os.environ.get("VZ_ROOT") or "/")

    def host(self, path: str) -> Path:
        """The host path of ``path`` (absolute, as written in a config file) under the prefix."""
        if not path.startswith("/"):
            raise ValueError(f"{path!r} is not an absolute path")
        return self.prefix / path.lstrip("/")

    @property
    def vz_conf(self) -> Path:
        return self.host("/etc/vz/vz.conf")

    @property
    def conf_dir(self) -> Path:
        return self.host("/etc/vz/conf")

    def ct_conf(self, ctid: int) -> Path:
        return self.conf_dir / f"{ctid}.conf"

    def sample_conf(self, name: str) -> Path:
        return self.conf_dir / f"ve-{name}.conf-sample"

    @property
    def run_dir(self) -> Path:
        """Runtime state: one JSON file per started CT."""
        return self.host("/run/vz")

    def state_file(self, ctid: int) -> Path:
        return self.run_dir / f"{ctid}.json"


def expand_veid(value: str, ctid: int) -> str:
    """Substitute ``$VEID`` / ``${VEID}`` (and ``$CTID``) as OpenVZ configs use them."""
    for token in ("${VEID}", "$VEID", "${CTID}", "$CTID"):
        value = value.replace(token, str(ctid))
    return value
