"""``--nameserver`` and ``--searchdomain``: their grammar and ``inherit`` (the host's
own values from its /etc/resolv.conf).  The CT's /etc/resolv.conf is written by the
dists plugin (its distribution's ``set_dns`` action).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

INHERIT = "inherit"
HOST_RESOLV_CONF = Path("/etc/resolv.conf")


def host_resolv(path: Path = HOST_RESOLV_CONF) -> tuple[list[str], list[str]]:
    """The host's (nameservers, search domains), for ``inherit``."""
    try:
        text = path.read_text()
    except OSError:
        return [], []
    servers: list[str] = []
    search: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
        elif words and words[0] in ("search", "domain"):
            search = words[1:]
    return servers, search


def resolve_list(text: str | None, which: int) -> list[str] | None:
    """``NAMESERVER``/``SEARCHDOMAIN`` text -> values (``inherit`` read from the host;
    ``which`` 0 for name servers, 1 for search domains); ``None`` when not set."""
    if text is None or not text.strip():
        return None
    words = text.split()
    if words == [INHERIT]:
        return host_resolv()[which]
    return words


# -- value grammars ---------------------------------------------------------------------------


class NameserverType:
    """``--nameserver ADDR`` (repeatable) or ``inherit``."""

    metavar = "ADDR|inherit"

    def parse(self, text: str) -> str:
        import ipaddress

        text = text.strip()
        if text == INHERIT:
            return text
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address (or 'inherit')") from None

    def to_conf(self, value: str) -> str:
        return value


class SearchdomainType:
    """``--searchdomain NAME`` (repeatable) or ``inherit``."""

    metavar = "NAME|inherit"

    def parse(self, text: str) -> str:
        from vzcore.values import HOSTNAME

        text = text.strip()
        if text == INHERIT:
            return text
        try:
            return HOSTNAME.parse(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a domain name (or 'inherit')") from None

    def to_conf(self, value: str) -> str:
        return value


def merge_list(_old: str | None, values: Sequence[str]) -> str | None:
    """Each call replaces the previous list (vzctl); ``inherit`` stands alone."""
    if INHERIT in values and len(values) > 1:
        raise ValueError("'inherit' cannot be combined with other values")
    return " ".join(values) or None
