"""Actions for vzcore's built-in ``busybox`` template (``ID=busybox``).

Busybox's init runs ``/etc/init.d/rcS`` and nothing that reads network files, so the
host's setup at every start is what the CT has; the files are kept in agreement for the
CT's own tools (``hostname -F``, busybox ``ifup -a``, ``login``/``su``):

* host name: ``/etc/hostname`` and ``/etc/hosts``;
* addresses: ``/etc/network/interfaces`` as the Debian action writes its stanzas, whole
  (busybox's ifupdown has no ``source``), when the CT has any, and the hook directories
  busybox's ``ifup`` runs, so that ``ifup -a`` inside repeats the host's setup;
* name servers: ``/etc/resolv.conf``;
* passwords: ``/etc/shadow`` with SHA-512 crypt (busybox's own crypt has no yescrypt).
"""

from __future__ import annotations

from collections.abc import Sequence

from vzcore_dists import common, content
from vzcore_dists.passwd import UserPass
from vzcore_dists.tree import CtTree

NAME = "busybox"
INTERFACES = "etc/network/interfaces"
HOOK_DIRECTORIES = tuple(f"etc/network/if-{when}.d" for when in ("pre-up", "up", "down",
                                                                  "post-down"))


def set_hostname(tree: CtTree, hostname: str, address: str | None) -> None:
    common.write_hostname(tree, hostname, address)


def set_addresses(tree: CtTree, interfaces: Sequence[content.Interface]) -> None:
    old = tree.read(INTERFACES)
    if old is not None and not content.is_ours(old):
        return  # the CT administrator's own file stays theirs
    if old is None and not interfaces:
        return
    # no 'lo' stanza: busybox's loopback method runs 'ip addr add 127.0.0.1/8', which
    # fails on the lo the host brought up; the hook directories its ifup runs must exist
    for hooks in HOOK_DIRECTORIES:
        tree.makedirs(hooks)
    tree.write(INTERFACES, content.ifupdown_stanzas(tree.ctid, interfaces, nodad=False))


def set_dns(tree: CtTree, nameservers: Sequence[str] | None,
            searchdomains: Sequence[str] | None) -> None:
    common.write_dns(tree, nameservers, searchdomains)


def check_userpass(tree: CtTree, pairs: Sequence[UserPass]) -> None:
    common.check_users(tree, pairs)


def set_userpass(tree: CtTree, pairs: Sequence[UserPass]) -> None:
    common.write_passwords(tree, pairs, "sha512")
