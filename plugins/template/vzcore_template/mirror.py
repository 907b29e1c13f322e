"""The host's configured Debian mirror, read from apt's sources (never a built-in URL).

apt's two formats are read: deb822 stanzas in ``/etc/apt/sources.list.d/*.sources``
(``Types: deb``, ``URIs:``, ``Suites:``) and one-line entries in
``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d/*.list``
(``deb [options] URI SUITE COMPONENT...``).  The main archive is the first ``deb`` entry
with a suite that is not ``-security``; the security archive, the first with one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import attrs

from vzcore.errors import InvalidValue

APT_ETC = Path("/etc/apt")
URL_RE = re.compile(r"(https?|file)://[^\s'\"]+")


@attrs.frozen
class Source:
    uri: str
    suites: tuple[str, ...]


@attrs.frozen
class Mirrors:
    """The archive to build from and, where one is configured, the security archive."""

    main: str
    security: str | None = None


def _deb822(text: str) -> Iterator[Source]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # a continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield Source(uri, tuple(fields.get("suites", "").split()))


def _one_line(text: str) -> Iterator[Source]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^]]*\]", " ", line[4:])  # [arch=amd64 signed-by=...]
        words = line.split()
        if len(words) >= 2:
            yield Source(words[0], (words[1],))


def sources(apt_etc: Path = APT_ETC) -> list[Source]:
    """Every ``deb`` source apt is configured with, in apt's reading order."""
    found: list[Source] = []
    main_list = apt_etc / "sources.list"
    if main_list.is_file():
        found += _one_line(main_list.read_text(errors="replace"))
    directory = apt_etc / "sources.list.d"
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        if path.suffix == ".sources":
            found += _deb822(path.read_text(errors="replace"))
        elif path.suffix == ".list":
            found += _one_line(path.read_text(errors="replace"))
    return found


def host_mirrors(apt_etc: Path = APT_ETC) -> Mirrors:
    """The host's Debian mirror; refused with the fix (``--mirror``) when none is configured."""
    main = security = None
    for source in sources(apt_etc):
        if not URL_RE.fullmatch(source.uri):
            continue
        is_security = any(s.endswith("-security") or s.endswith("/updates") for s in source.suites)
        if is_security:
            security = security or source.uri
        elif main is None and "debian" in source.uri:
            main = source.uri
    if main is None:
        raise InvalidValue(f"template create: no Debian mirror is configured in {apt_etc}/sources.list "
                           f"or {apt_etc}/sources.list.d/; give one with --mirror URL")
    return Mirrors(main.rstrip("/"), security.rstrip("/") if security else None)


def check_mirror(url: str) -> str:
    if not URL_RE.fullmatch(url):
        raise InvalidValue(f"template create: --mirror {url!r} is not an http://, https:// "
                           "or file:// URL of a Debian archive")
    return url.rstrip("/")
