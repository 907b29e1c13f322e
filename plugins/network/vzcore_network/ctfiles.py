"""The CT's /etc/hostname, /etc/hosts and /etc/resolv.conf (``--hostname``,
``--nameserver``, ``--searchdomain``), as vzctl's distribution scripts write them.

Content is computed by pure functions; the files are read and replaced through
:mod:`vzcore.linux.safefs`, so a link the CT planted (``/etc/resolv.conf ->
/etc/shadow`` of the host) is resolved inside the CT's root, and the write replaces the
link with a regular file instead of following it.

* ``/etc/hostname``: the host name.
* ``/etc/hosts``: a ``localhost`` line is kept or added; the host name's line follows
  OpenVZ's marker comment and is replaced on every change (the CT's first IPv4 venet
  address, else ``127.0.1.1``); every other line stays.
* ``/etc/resolv.conf``: ``nameserver`` lines are replaced by ``NAMESERVER`` and the
  ``search``/``domain`` line by ``SEARCHDOMAIN`` when set; other lines stay.  ``inherit``
  copies the host's values from its own /etc/resolv.conf.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from vzcore.errors import KernelError, VzError
from vzcore.linux import safefs

HOSTS_MARKER = "# Auto-generated hostname. Please do not remove this comment."
INHERIT = "inherit"
HOST_RESOLV_CONF = Path("/etc/resolv.conf")


# -- pure content ---------------------------------------------------------------------------


def hosts_content(old: str, hostname: str, address: str | None) -> str:
    """``/etc/hosts`` with the managed host-name line for ``hostname``."""
    lines = old.splitlines()
    kept: list[str] = []
    skip_next = False
    for line in lines:
        if skip_next:
            skip_next = False
            continue
        if line.strip() == HOSTS_MARKER:
            skip_next = True  # the managed line follows the marker
            continue
        kept.append(line)
    if not any(_names(line) & {"localhost"} and line.split()[0] == "127.0.0.1" for line in kept
               if line.strip() and not line.lstrip().startswith("#")):
        kept.insert(0, "127.0.0.1\tlocalhost")
    names = [hostname.rstrip(".")]
    short = names[0].split(".")[0]
    if short != names[0]:
        names.append(short)
    kept += [HOSTS_MARKER, f"{address or '127.0.1.1'}\t{' '.join(names)}"]
    return "\n".join(kept) + "\n"


def _names(line: str) -> set[str]:
    return set(line.split()[1:])


def resolv_content(old: str, nameservers: Sequence[str] | None,
                   searchdomains: Sequence[str] | None) -> str:
    """``/etc/resolv.conf`` with new ``nameservers`` and/or ``searchdomains`` (``None``:
    leave those lines as they are)."""
    kept = []
    for line in old.splitlines():
        word = line.split()[0] if line.split() else ""
        if nameservers is not None and word == "nameserver":
            continue
        if searchdomains is not None and word in ("search", "domain"):
            continue
        kept.append(line)
    if searchdomains:
        kept.insert(0, "search " + " ".join(searchdomains))
    if nameservers:
        kept += [f"nameserver {server}" for server in nameservers]
    return "\n".join(kept) + "\n" if kept else ""


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


# -- writing --------------------------------------------------------------------------------


READ_LIMIT = 16 << 20
"""The largest /etc/hosts or /etc/resolv.conf rewritten; a larger one is refused, whole."""


def _read(root_fd: int, path: str, ctid: int) -> str:
    """The file's whole text; "" when it is missing or not a regular file (written anew)."""
    try:
        data = safefs.read_file(root_fd, path, READ_LIMIT)
    except KernelError as exc:
        if exc.errno == errno.EFBIG:
            raise VzError(f"CT {ctid}: /{path} in the CT is larger than {READ_LIMIT >> 20} MiB, "
                          "so it is not rewritten; shrink it inside the CT") from None
        return ""
    # surrogateescape: bytes that are not UTF-8 are written back as they were
    return data.decode(errors="surrogateescape")


def write(root: Path, *, hostname: str | None, address: str | None,
          nameservers: Sequence[str] | None, searchdomains: Sequence[str] | None,
          ctid: int, owner: tuple[int, int]) -> None:
    """Update the files below the CT root ``root`` (host path) for what is not ``None``;
    new files belong to ``owner``, the host IDs of the CT's root."""
    if hostname is None and nameservers is None and searchdomains is None:
        return
    try:
        root_fd = safefs.open_root(root)
    except OSError as exc:
        raise VzError(f"CT {ctid}: cannot open its root {root}: {exc.strerror}") from exc
    try:
        safefs.makedirs(root_fd, "etc")
        if hostname is not None:
            safefs.write_file(root_fd, "etc/hostname", f"{hostname}\n".encode(), owner=owner)
            hosts = hosts_content(_read(root_fd, "etc/hosts", ctid), hostname, address)
            safefs.write_file(root_fd, "etc/hosts", hosts.encode(errors="surrogateescape"),
                              owner=owner)
        if nameservers is not None or searchdomains is not None:
            resolv = resolv_content(_read(root_fd, "etc/resolv.conf", ctid), nameservers,
                                    searchdomains)
            safefs.write_file(root_fd, "etc/resolv.conf", resolv.encode(errors="surrogateescape"),
                              owner=owner)
    except KernelError as exc:
        raise VzError(f"CT {ctid}: cannot write its network files: {exc}") from exc
    finally:
        os.close(root_fd)
