"""From a CT's config (and a ``set``'s changes) to its distribution's actions.

What the CT should have is read from the config keys other plugins own (``HOSTNAME``:
core; ``IP_ADDRESS``, ``NETIF``, ``NAMESERVER``, ``SEARCHDOMAIN``: network) and handed to
the actions of the CT's distribution (:mod:`vzcore_dists.select`), which write the CT's
own files.  The live kernel state (addresses, routes, the UTS host name) stays the
network and isolation plugins' work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from vzcore_dists import content
from vzcore_dists.select import dist_for
from vzcore_dists.tree import CtTree

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container

ADDRESS_KEYS = ("IP_ADDRESS", "NETIF")
DNS_KEYS = ("NAMESERVER", "SEARCHDOMAIN")
FILE_KEYS = ("HOSTNAME", *ADDRESS_KEYS, *DNS_KEYS)


def _value(ct: Container, changes: ChangeSet | None, key: str) -> str | None:
    if changes is not None and key in changes:
        return changes[key].new
    return ct.get(key)


def veth_addresses(netif_text: str | None) -> dict[str, list[str]]:
    """CT interface name -> its ``ifaddr`` addresses (empty: none listed, or ``none``).
    ``NETIF`` is the network plugin's grammar; without that plugin there are no veths."""
    if not netif_text:
        return {}
    try:
        from vzcore_network.netif import parse_netif_conf
    except ImportError:
        return {}
    return {n.ifname: (n.ip or "").split() for n in parse_netif_conf(netif_text)}


def _dns_list(text: str | None, which: int) -> list[str] | None:
    """``NAMESERVER``/``SEARCHDOMAIN`` text -> values (``inherit``: the host's, as the
    network plugin, which declares the options, reads them)."""
    try:
        from vzcore_network.ctfiles import resolve_list
    except ImportError:
        return text.split() if text and text.split() else None
    return resolve_list(text, which)


def open_tree(ct: Container) -> CtTree:
    return CtTree(ct.root, ctid=ct.ctid, owner=ct.root_owner)


def dist_of(ct: Container, tree: CtTree) -> ModuleType:
    return dist_for(ct.get("OSTEMPLATE"), tree)


def write(ct: Container, keys: Sequence[str], changes: ChangeSet | None = None) -> None:
    """Run the actions that ``keys`` concern, with the values after ``changes``."""
    hostname = _value(ct, changes, "HOSTNAME")
    ip_address = _value(ct, changes, "IP_ADDRESS")
    do_hostname = bool(hostname) and ("HOSTNAME" in keys or "IP_ADDRESS" in keys)
    do_addresses = any(key in keys for key in ADDRESS_KEYS)
    dns: Mapping[str, list[str] | None] = {
        key: _dns_list(_value(ct, changes, key), which)
        for which, key in enumerate(DNS_KEYS) if key in keys}
    do_dns = any(value is not None for value in dns.values()) or (
        changes is not None and any(key in changes for key in DNS_KEYS))
    if not (do_hostname or do_addresses or do_dns):
        return
    interfaces = content.interfaces_of(ip_address, veth_addresses(_value(ct, changes, "NETIF")))
    with open_tree(ct) as tree:
        dist = dist_of(ct, tree)
        if do_hostname:
            assert hostname is not None
            dist.set_hostname(tree, hostname, content.first_ipv4(ip_address))
        if do_addresses:
            dist.set_addresses(tree, interfaces)
        if do_dns:
            dist.set_dns(tree, dns.get("NAMESERVER"), dns.get("SEARCHDOMAIN"))
