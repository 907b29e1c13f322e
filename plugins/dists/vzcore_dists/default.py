"""Actions for a distribution vzcore has no module for (OpenVZ's ``default`` dist
config): the files every Linux system reads; no address files (their format is the
distribution's), passwords with SHA-512 crypt (every libc's crypt has it)."""

from __future__ import annotations

from collections.abc import Sequence

from vzcore_dists import common, content
from vzcore_dists.passwd import UserPass
from vzcore_dists.tree import CtTree

NAME = "default"


def set_hostname(tree: CtTree, hostname: str, address: str | None) -> None:
    common.write_hostname(tree, hostname, address)


def set_addresses(tree: CtTree, interfaces: Sequence[content.Interface]) -> None:
    """Nothing: the host's setup at every start is what such a CT has."""


def set_dns(tree: CtTree, nameservers: Sequence[str] | None,
            searchdomains: Sequence[str] | None) -> None:
    common.write_dns(tree, nameservers, searchdomains)


def check_userpass(tree: CtTree, pairs: Sequence[UserPass]) -> None:
    common.check_users(tree, pairs)


def set_userpass(tree: CtTree, pairs: Sequence[UserPass]) -> None:
    common.write_passwords(tree, pairs, "sha512")
