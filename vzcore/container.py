"""A container as the host knows it: its ID, config, and where its files are."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from vzcore.conffile import ConfigFile
from vzcore.errors import ConfigError, CtConfigMissing, InvalidSyntax
from vzcore.idmap import IdMap, parse_ranges
from vzcore.linux.devnodes import TTY_GID
from vzcore.paths import DEFAULTS, Paths, expand_veid

MAX_CTID = 2147483644
FIRST_USER_CTID = 101
"""OpenVZ reserves IDs up to 100 for itself; 0 is the host."""
HOST_CTID = 0
"""CT 0 is the host itself: ``vzctl set 0`` changes the host's own settings (VE0CPUUNITS)."""


_CTID = re.compile(r"0|[1-9][0-9]{0,9}")
"""The one spelling of a CT ID: ASCII digits without a sign, spaces or leading zeros
(``\\d`` would also take other scripts' digits, which ``int()`` converts silently)."""


def is_canonical_ctid(text: str) -> bool:
    """True when ``text`` is a CT ID written the only accepted way (``0`` is the host)."""
    return _CTID.fullmatch(text) is not None and int(text) <= MAX_CTID


def parse_ctid(text: str) -> int:
    """A CTID from the command line; anything but the canonical spelling is refused, never
    stripped or normalised (``' 101'``, ``'0101'`` and full-width digits name no CT)."""
    if _CTID.fullmatch(text) is None:
        raise InvalidSyntax(f"invalid CT ID {text!r}: a CT ID is a number from "
                            f"{FIRST_USER_CTID} to {MAX_CTID} in the digits 0-9, without "
                            "spaces, signs or leading zeros")
    ctid = int(text)
    if ctid > MAX_CTID:
        raise InvalidSyntax(f"invalid CT ID {text!r}: the largest CT ID is {MAX_CTID}")
    return ctid


def ctid_of_file(name: str, suffix: str) -> int | None:
    """The CT a file named ``CTID<suffix>`` (``101.conf``, ``101.json``) belongs to; ``None``
    for any other name, so ``0101.conf`` or ``101 .conf`` is never taken for CT 101."""
    if not name.endswith(suffix):
        return None
    stem = name[: len(name) - len(suffix)]
    if not is_canonical_ctid(stem) or stem == "0":
        return None
    return int(stem)


NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_.-]{0,63}"
"""A CT name (``NAME``, ``vzctl set --name``): letters, digits, ``_ . -``, at most 64,
starting with a letter: never an option (``-x``), a hidden file, nor anything that could
be a CT ID or a mistyped one (``10x`` is refused as malformed, not looked up)."""

NAME_EXPLANATION = ("a CT name is 1 to 64 letters, digits, '_', '.' or '-' starting with a "
                    "letter (so it is never taken for a CT ID)")


def is_ctid_text(text: str) -> bool:
    """Whether a command-line argument is meant as a CT ID (all ASCII digits) rather than a
    name; OpenVZ's precedence: digits are a CTID even if a CT were named so."""
    return text.isascii() and text.isdigit()


def names_in(conf_dir: Path, ctids: list[int]) -> dict[int, str]:
    """The ``NAME`` of each CT in ``ctids`` that has one (read from its config)."""
    found: dict[int, str] = {}
    for ctid in ctids:
        name = ConfigFile.load(conf_dir / f"{ctid}.conf", missing_ok=True).get("NAME")
        if name:
            found[ctid] = name
    return found


def ctid_by_name(conf_dir: Path, ctids: list[int], name: str) -> int | None:
    """The CT whose config says ``NAME="name"``; ``None`` if no CT has that name.

    :raises ConfigError: when several configs hold the name (edited by hand), naming them.
    """
    owners = [ctid for ctid, value in names_in(conf_dir, ctids).items() if value == name]
    if len(owners) > 1:
        raise ConfigError(f"CTs {', '.join(map(str, owners))} are all named {name!r} in their "
                          f"configs in {conf_dir}; give each a unique name with "
                          f"'vzctl set CTID --name NAME --save'")
    return owners[0] if owners else None


@contextmanager
def names_lock(lock_dir: Path) -> Iterator[None]:
    """Held while a verb checks a new name's uniqueness and saves it: the CTs' own locks
    do not keep two CTs from taking one name at once.  ``flock`` ends with the process,
    so a killed vzctl leaves nothing to clean."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / "names.lck", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def resolve_ct_argument(text: str, conf_dir: Path, ctids: list[int]) -> int:
    """The CT ID that a command-line argument means: a CTID, or a CT's name.

    :param ctids: the CTs that have a config (where a name is looked up).
    :raises InvalidSyntax: for text that is neither a CT ID nor a valid name.
    :raises CtConfigMissing: for a valid name that no CT has.
    """
    if is_ctid_text(text):
        return parse_ctid(text)
    if re.fullmatch(NAME_PATTERN, text) is None:
        raise InvalidSyntax(f"invalid CT ID or name {text!r}: a CT ID is a number from "
                            f"{FIRST_USER_CTID} to {MAX_CTID}; {NAME_EXPLANATION}")
    ctid = ctid_by_name(conf_dir, ctids, text)
    if ctid is None:
        raise CtConfigMissing(f"no CT is named {text!r}: no config in {conf_dir} has "
                              f"NAME=\"{text}\"; 'vzlist -a -n' lists the names, "
                              f"'vzctl set CTID --name {text} --save' gives one")
    return ctid


@attrs.define
class Container:
    """One CT: ``config`` is its ``CTID.conf`` (empty if the CT does not exist), read over
    the defaults in ``vz.conf`` (any CT parameter may appear there as a default)."""

    ctid: int
    paths: Paths
    global_config: ConfigFile
    config: ConfigFile
    areas_of: Callable[[Container], list[str]] | None = attrs.field(
        default=None, eq=False, repr=False)
    """How to ask the active plugins for :meth:`host_areas` (the engine sets it)."""

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

    def area_text(self, key: str) -> str:
        """``VE_PRIVATE`` or ``VE_ROOT`` as the config gives it, ``$VEID`` expanded (a path
        relative to the prefix; :mod:`vzcore.areas` says whether it is acceptable)."""
        return expand_veid(self.get(key) or DEFAULTS[key], self.ctid)

    def area_pattern(self, key: str) -> str:
        """vz.conf's pattern for ``key`` (``/vz/private/$VEID``): where every CT's area lies."""
        return self.global_config.get(key) or DEFAULTS[key]

    def _path(self, key: str) -> Path:
        text = self.area_text(key)
        if not text.startswith("/"):
            raise ConfigError(f"CT {self.ctid}: {key}={text!r} in {self.config.path} is not an "
                              f"absolute path; set it to the CT's own, such as "
                              f"{expand_veid(DEFAULTS[key], self.ctid)}")
        return self.paths.host(text)

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

    def host_areas(self) -> list[str]:
        """Host directories where the active plugins keep CTs' files besides
        ``VE_PRIVATE``/``VE_ROOT`` (a btrfs layout's ``BTRFS_POOL``: the ``vz_host_areas``
        hook); a CT's root may change what lies there.  Empty for a CT loaded without the
        engine."""
        return self.areas_of(self) if self.areas_of is not None else []

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
        uids, gids = self.config.get("LOCAL_UID_MAP"), self.config.get("LOCAL_GID_MAP")
        if uids or gids:  # a general map (vzcore-oci's): LOCAL_UID/GID are its root's
            try:
                idmap = IdMap.of_ranges(parse_ranges(uids or "", "user"),
                                        parse_ranges(gids or "", "group"))
                root = (int(uid), int(gid))
            except ValueError as exc:
                raise ConfigError(f"CT {self.ctid}: LOCAL_UID_MAP={uids!r} LOCAL_GID_MAP={gids!r} "
                                  f"in {self.config.path}: {exc}") from None
            if idmap.root != root:
                raise ConfigError(f"CT {self.ctid}: LOCAL_UID={uid!r} LOCAL_GID={gid!r} in "
                                  f"{self.config.path} are not the host IDs its LOCAL_UID_MAP "
                                  f"and LOCAL_GID_MAP give its root ({idmap.root})")
            return idmap
        try:
            return IdMap(int(uid), int(gid))
        except ValueError as exc:
            raise ConfigError(f"CT {self.ctid}: LOCAL_UID={uid!r} LOCAL_GID={gid!r} in "
                              f"{self.config.path}: {exc}") from None

    @property
    def tty_group(self) -> int:
        """Host GID of the CT's ``tty`` group (its GID 5: owner of its console and devpts
        terminals); the CT root's group when a general map leaves GID 5 out."""
        idmap = self.idmap
        if idmap is None:
            return TTY_GID
        try:
            return idmap.host_gid(TTY_GID)
        except ValueError:
            return idmap.root[1]

    @property
    def root_owner(self) -> tuple[int, int]:
        """Host (uid, gid) that the CT's root is: the owner of files the host writes for it."""
        idmap = self.idmap
        return idmap.root if idmap else (0, 0)

    @property
    def hostname(self) -> str | None:
        return self.get("HOSTNAME")
