"""``vz_validate`` for the network keys: refuse bad input before anything changes.

Checked: every address and interface parses; no address twice; the ``NEIGHBOUR_DEVS``
syntax; for what a verb adds: an address (venet, or a veth's ``--ifaddr``, which its
filter lets the CT claim) that another CT's config already lists (``create``/``set``),
that the host routes to another CT or owns itself, a bridge that
does not exist or is not a bridge, and a host interface name another CT uses or the host
already has.  ``start`` only parses the config: a start that would take an address in
use or join a missing bridge fails when the device is made (routes are added with
``NLM_F_EXCL``) and is rolled back, so no start pays for lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from vzcore.conffile import ConfigFile
from vzcore.container import ctid_of_file
from vzcore.errors import ConfigError, InvalidValue, VzError
from vzcore_network import neighbours
from vzcore_network.addresses import CtAddress, IPAddress, parse_address
from vzcore_network.devices import IP_INUSE, VETH_ERROR, NetPlan, bridge_problem, plan_of, venet_host
from vzcore_network.netif import ResolvedNetif

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container

NETWORK_KEYS = ("IP_ADDRESS", "NETIF")


def _text(ct: Container, changes: ChangeSet, key: str) -> str | None:
    return changes[key].new if key in changes else ct.get(key)


def validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """Raise a :class:`VzError` for the first problem found; change nothing."""
    plan = plan_of(ct.ctid, _text(ct, changes, "IP_ADDRESS"), _text(ct, changes, "NETIF"))
    try:
        neighbours.parse(ct.get("NEIGHBOUR_DEVS"))
    except ValueError as exc:
        raise InvalidValue(f"NEIGHBOUR_DEVS in vz.conf: {exc}") from None
    if verb == "start":
        # Nothing more at start: the routes are added with NLM_F_EXCL and bridges looked
        # up when the devices are made, which refuses a taken address or a missing bridge
        # (and rolls the start back) without a lookup that every start would pay for.
        return
    if not any(key in changes for key in NETWORK_KEYS):
        return
    try:
        # at create, the CT's config already holds the new values: nothing was there before
        before = NetPlan() if verb == "create" else plan_of(ct.ctid, ct.get("IP_ADDRESS"),
                                                            ct.get("NETIF"))
    except VzError:
        before = NetPlan()
    old_ips = {a.address for a in before.addresses}
    old_names = {n.host_ifname for n in before.netifs}
    old_bridges = {n.ifname: n.bridge for n in before.netifs}
    old_filtered = _filtered(before)
    added = [a for a in plan.addresses if a.address not in old_ips]
    named = [n for n in plan.netifs if n.host_ifname not in old_names]
    bridged = [n for n in plan.netifs if n.bridge and old_bridges.get(n.ifname, "") != n.bridge]
    # a veth's --ifaddr list is what its filter lets the CT claim: never another CT's
    filtered = [a for a in _filtered(plan) if a not in old_filtered]
    _check_other_configs(ct, added, named, filtered)
    _check_host(ct, added, bridged=bridged, named=named, filtered=filtered)


def _filtered(plan: NetPlan) -> list[IPAddress]:
    """The addresses the veth filters of ``plan`` let the CT use."""
    found = [parse_address(a, link_layer=True).address for n in plan.netifs for a in n.addresses or ()]
    return [a for a in found if not a.is_link_local]  # link-local: per link, not unique


def _check_other_configs(ct: Container, added: Sequence[CtAddress],
                         netifs: Sequence[ResolvedNetif], filtered: Sequence[IPAddress]) -> None:
    """An address or host interface name another CT's config already has."""
    if not added and not netifs and not filtered:
        return
    wanted_ips = {a.address for a in added} | set(filtered)
    wanted_names = {n.host_ifname for n in netifs}
    try:
        paths = sorted(ct.paths.conf_dir.glob("*.conf"))
    except OSError:
        return
    for path in paths:
        other_id = ctid_of_file(path.name, ".conf")
        if other_id is None or other_id == ct.ctid:
            continue
        stem = str(other_id)
        try:
            other = plan_of(other_id, *_keys(path))
        except (VzError, ConfigError, OSError):
            continue  # another CT's broken config is its own problem
        theirs = [(a.address, "IP_ADDRESS") for a in other.addresses]
        theirs += [(a, "NETIF ip=") for a in _filtered(other)]
        for address, key in theirs:
            if address in wanted_ips:
                raise VzError(f"CT {ct.ctid}: IP address {address} is already used by "
                              f"CT {stem} ({key} in its config); choose another",
                              exit_code=IP_INUSE)
        for netif in other.netifs:
            if netif.host_ifname in wanted_names:
                raise InvalidValue(f"CT {ct.ctid}: host interface name {netif.host_ifname} is "
                                   f"already used by CT {stem}; choose another with --host_ifname")


def _keys(path: object) -> tuple[str | None, str | None]:
    conf = ConfigFile.load(path)  # type: ignore[arg-type]
    return conf.get("IP_ADDRESS"), conf.get("NETIF")


def _check_host(ct: Container, added: Sequence[CtAddress], *, bridged: Sequence[ResolvedNetif],
                named: Sequence[ResolvedNetif], filtered: Sequence[IPAddress]) -> None:
    """What the host's kernel says: routes, bridges, existing interfaces."""
    from vzcore_network.rtnl import Rtnl

    if not added and not bridged and not named and not filtered:
        return
    own = venet_host(ct.ctid)
    with Rtnl() as host:
        for ip in filtered:
            if host.route_to(str(ip)).kind == "local":
                raise VzError(f"CT {ct.ctid}: IP address {ip} is the host's own; a veth's "
                              "--ifaddr must be the CT's", exit_code=IP_INUSE)
        for address in added:
            route = host.route_to(str(address.address))
            owner = ""
            if route.kind == "local":
                owner = "by the host itself"
            elif route.kind == "unicast" and route.dst_len == address.full_prefix and route.oif:
                name = host.link_name(route.oif)
                if name != own:
                    owner = (f"by CT {name[5:]}" if name and neighbours.VENET_HOST_PATTERN.fullmatch(name)
                             else f"on the host (routed to {name})")
            if owner:
                raise VzError(f"CT {ct.ctid}: IP address {address.address} is already in use "
                              f"{owner}; choose another", exit_code=IP_INUSE)
        for netif in bridged:
            problem = bridge_problem(host, netif.bridge or "")
            if problem:
                raise VzError(f"CT {ct.ctid}: veth {netif.ifname}: {problem} "
                              f"(--bridge {netif.bridge})", exit_code=VETH_ERROR)
        for netif in named:
            if host.link(netif.host_ifname) is not None:
                raise VzError(f"CT {ct.ctid}: veth {netif.ifname}: the host already has an "
                              f"interface named {netif.host_ifname}; choose another with "
                              "--host_ifname", exit_code=VETH_ERROR)
