"""Making, changing and removing a CT's network devices from the host (over rtnetlink).

venet (routed)
    a veth pair: ``venet<CTID>`` on the host, ``venet0`` in the CT, both without ARP
    (``IFF_NOARP``) and without IPv6 link-local addresses, sharing one MAC so that
    frames are accepted without any neighbour resolution.  Inside: every CT address on
    ``venet0`` and default routes through it.  On the host: a route per address
    (/32, /128) through the host end, a source filter on its ingress
    (:mod:`vzcore_network.antispoof`), ``rp_filter=1`` and forwarding for what the CT
    sends, and proxy neighbour entries on ``NEIGHBOUR_DEVS``.
veth (bridged)
    a veth pair per ``NETIF`` entry: the CT end named and addressed as configured, the
    host end up and, with a bridge, enslaved to it.  The CT configures its addresses.

Every host-side object is recorded in the plugin's part of the state file before it is
made (:func:`record_plan`), and :func:`remove` deletes by those records: deleting a host
end deletes its peer and every route through it.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from vzcore.errors import InvalidValue, VzError
from vzcore_network import antispoof, neighbours, vethfilter
from vzcore_network.addresses import CtAddress, parse_address, parse_list
from vzcore_network.netif import ResolvedNetif, check_host_names, parse_netif_conf
from vzcore_network.record import NetworkRecord, Venet

if TYPE_CHECKING:
    from collections.abc import Iterator

    from vzcore.container import Container
    from vzcore.runtime import Run
    from vzcore_network.rtnl import Rtnl

VENET = "venet0"
FILTER_PRIO = 1
FILTER_NAME = "vzcore-venet-source"
VETH_FILTER_NAMES = ("vzcore-veth-source", "vzcore-veth-dest")
IP_INUSE = 78       # VZ_IP_INUSE
CANT_ADDIP = 34     # VZ_CANT_ADDIP
VETH_ERROR = 130    # VZ_VETH_ERROR


def venet_host(ctid: int) -> str:
    """The host end of CT ``ctid``'s venet (at most 15 characters for any CT ID)."""
    return f"venet{ctid}"


def venet_mac(ctid: int) -> str:
    """Both ends of a venet pair share this MAC (``FE:FF:`` and the CT ID), so frames
    between them are accepted without any neighbour resolution."""
    return "FE:FF:" + ":".join(f"{b:02X}" for b in ctid.to_bytes(4, "big"))


@attrs.frozen
class NetPlan:
    """What the CT's config asks for: venet addresses and veth interfaces."""

    addresses: tuple[CtAddress, ...] = ()
    netifs: tuple[ResolvedNetif, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.addresses and not self.netifs


def plan_of(ctid: int, ip_text: str | None, netif_text: str | None) -> NetPlan:
    """Parse ``IP_ADDRESS`` and ``NETIF``; a bad value raises InvalidValue with the fix."""
    try:
        addresses = parse_list(ip_text)
    except ValueError as exc:
        raise InvalidValue(f"CT {ctid}: IP_ADDRESS: {exc}; fix it with 'vzctl set {ctid} "
                           "--ipdel all --ipadd ADDR --save'") from None
    try:
        netifs = check_host_names(ctid, parse_netif_conf(netif_text))
        for netif in netifs:
            _veth_programs(netif)  # too many addresses for one program: refused here
    except ValueError as exc:
        raise InvalidValue(f"CT {ctid}: NETIF: {exc}") from None
    seen: set[Any] = set()
    for address in addresses:
        if address.address in seen:
            raise InvalidValue(f"CT {ctid}: IP_ADDRESS lists {address.address} twice")
        seen.add(address.address)
    return NetPlan(tuple(addresses), tuple(netifs))


def plan_for(ct: Container) -> NetPlan:
    return plan_of(ct.ctid, ct.get("IP_ADDRESS"), ct.get("NETIF"))


# -- records ------------------------------------------------------------------------------


def recorded_addresses(record: NetworkRecord | None) -> list[CtAddress]:
    venet = record.venet if record is not None else None
    return [parse_address(a) for a in venet.addresses] if venet else []


def recorded_netifs(record: NetworkRecord | None) -> list[ResolvedNetif]:
    return list(record.veth) if record is not None else []


def plan_proxies(host: Rtnl, setting: neighbours.NeighbourDevs,
                 addresses: Iterable[CtAddress]) -> list[tuple[str, str]]:
    """[device, address] proxy entries for ``addresses`` (before their routes exist)."""
    everything = neighbours.arp_devices(host) if setting.mode == "all" else None
    result = []
    for address in addresses:
        for name, _index in neighbours.devices_for(host, setting, address, everything):
            result.append((name, str(address.address)))
    return result


def record_of(ctid: int, plan: NetPlan, proxies: Sequence[tuple[str, str]]) -> NetworkRecord:
    """Everything the start will make, to record before making it."""
    links = [n.host_ifname for n in plan.netifs]
    venet = None
    if plan.addresses:
        links.insert(0, venet_host(ctid))
        venet = Venet(venet_host(ctid), tuple(str(a) for a in plan.addresses))
    return NetworkRecord(links=links, proxies=proxies, venet=venet, veth=plan.netifs)


# -- small helpers ----------------------------------------------------------------------------


@contextmanager
def netns_fd(pid: int) -> Iterator[int]:
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        pass


def _read_sysctl(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        print(f"warning: {message}", file=sys.stderr)


def _host_end_sysctls(name: str, ctid: int, addresses: Sequence[CtAddress]) -> None:
    """Strict reverse-path filtering (a second line behind the source filter) and
    forwarding of what the CT sends, on the host end only."""
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/rp_filter", "1")
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/forwarding", "1")
    _ipv6_forwarding(name, ctid, addresses)


def _ipv6_forwarding(name: str, ctid: int, addresses: Sequence[CtAddress]) -> None:
    if not any(a.version == 6 for a in addresses):
        return
    if _read_sysctl(f"/proc/sys/net/ipv6/conf/{name}/force_forwarding") is not None:
        _sysctl(f"/proc/sys/net/ipv6/conf/{name}/force_forwarding", "1")  # Linux 6.17+
    elif _read_sysctl("/proc/sys/net/ipv6/conf/all/forwarding") == "0":
        _warn_once("ipv6-forwarding",
                   f"CT {ctid}: IPv6 forwarding is off on this host, so the CT's IPv6 "
                   "addresses reach only the host; enable it with "
                   "'sysctl net.ipv6.conf.all.forwarding=1'")


def _filter(host: Rtnl, index: int, addresses: Sequence[CtAddress]) -> None:
    ops = antispoof.encode(antispoof.program([a.address for a in addresses]))
    host.set_ingress_bpf(index, ops, prio=FILTER_PRIO, name=FILTER_NAME)


def _veth_programs(netif: ResolvedNetif) -> tuple[bytes, bytes]:
    """The encoded ingress and egress programs of a veth's host end."""
    addresses = None
    if netif.addresses is not None:
        addresses = [parse_address(a).address for a in netif.addresses]
    return (antispoof.encode(vethfilter.ingress(netif.mac, netif.mac_filter, addresses)),
            antispoof.encode(vethfilter.egress(netif.mac, netif.mac_filter)))


def _veth_filter(host: Rtnl, ctid: int, index: int, netif: ResolvedNetif) -> None:
    """Install or atomically replace the veth's host-end filters (and their qdisc)."""
    from vzcore_network.rtnl import NetlinkError

    ingress, egress = _veth_programs(netif)
    try:
        try:
            host.add_clsact(index)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:  # a live change: the qdisc is there
                raise
        host.set_ingress_bpf(index, ingress, prio=FILTER_PRIO, name=VETH_FILTER_NAMES[0])
        host.set_ingress_bpf(index, egress, prio=FILTER_PRIO, name=VETH_FILTER_NAMES[1],
                             egress=True)
    except NetlinkError as exc:
        raise VzError(f"CT {ctid}: cannot install the veth filter on {netif.host_ifname}: "
                      f"{exc.strerror}; the kernel needs sch_ingress and cls_bpf "
                      "(CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF)", exit_code=VETH_ERROR) from exc


def _in_use(ctid: int, address: CtAddress, host: Rtnl) -> VzError:
    owner = _owner(host, str(address.address))
    return VzError(f"CT {ctid}: IP address {address.address} is already in use{owner}; "
                   f"remove it there first or choose another with 'vzctl set {ctid} "
                   f"--ipdel {address.address} --ipadd ADDR'", exit_code=IP_INUSE)


def _owner(host: Rtnl, address: str) -> str:
    route = host.route_to(address)
    if route.kind == "local":
        return " by the host itself"
    name = host.link_name(route.oif) if route.oif is not None else None
    if name and neighbours.VENET_HOST_PATTERN.fullmatch(name):
        return f" by CT {name[5:]}"
    return f" (routed to {name})" if name else ""


def _add_address(host: Rtnl, inside: Rtnl, ctid: int, host_index: int, ct_index: int,
                 address: CtAddress) -> None:
    from vzcore_network.rtnl import NetlinkError

    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        host.route(True, family, str(address.address), address.full_prefix, host_index)
    except NetlinkError as exc:
        if exc.errno == errno.EEXIST:
            raise _in_use(ctid, address, host) from None
        raise VzError(f"CT {ctid}: cannot route {address.address} to the CT: {exc.strerror}",
                      exit_code=CANT_ADDIP) from exc
    inside.address(True, ct_index, str(address.address), address.prefixlen)


def _remove_address(host: Rtnl, inside: Rtnl | None, host_index: int, ct_index: int | None,
                    address: CtAddress) -> None:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    host.route(False, family, str(address.address), address.full_prefix, host_index)
    if inside is not None and ct_index is not None:
        inside.address(False, ct_index, str(address.address), address.prefixlen)


# -- start -----------------------------------------------------------------------------------


def _pair_failure(exc: OSError) -> str:
    """Why the kernel refused a veth pair, with the fix where there is one."""
    if exc.errno == errno.EEXIST:
        return "a device of that name exists"
    if exc.errno == errno.EOPNOTSUPP:
        return ("the kernel has no veth devices (CONFIG_VETH); load the module with "
                "'modprobe veth'")
    return exc.strerror or str(exc)


def make_venet(host: Rtnl, inside: Rtnl, ns_fd: int, ctid: int,
               addresses: Sequence[CtAddress]) -> None:
    """Create and configure the venet pair of CT ``ctid`` (its namespace is ``ns_fd``)."""
    from vzcore_network.rtnl import NetlinkError

    name, mac = venet_host(ctid), venet_mac(ctid)
    try:
        host.create_veth(name, mac, VENET, mac, peer_netns_fd=ns_fd, noarp=True)
    except NetlinkError as exc:
        raise VzError(f"CT {ctid}: cannot create the venet pair ({name} on the host): "
                      f"{_pair_failure(exc)}", exit_code=CANT_ADDIP) from exc
    host_index = host.link_index(name)
    ct_index = inside.link_index(VENET)
    if host_index is None or ct_index is None:
        raise VzError(f"CT {ctid}: the venet pair vanished while it was set up")
    try:
        host.add_clsact(host_index)
        _filter(host, host_index, addresses)  # before the link is up: nothing passes unchecked
    except NetlinkError as exc:
        raise VzError(f"CT {ctid}: cannot install the venet source filter on {name}: "
                      f"{exc.strerror}; the kernel needs sch_ingress and cls_bpf "
                      "(CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF)", exit_code=CANT_ADDIP) from exc
    _host_end_sysctls(name, ctid, addresses)
    host.set_link(host_index, no_link_local=True)
    inside.set_link(ct_index, no_link_local=True)
    host.set_link(host_index, up=True)
    # The end that comes up second gets its queue at once; the other one through the
    # kernel's link watcher: the CT's end is the second so that its first answer is sent.
    inside.set_link(ct_index, up=True)
    inside.route(True, socket.AF_INET, None, 0, ct_index)
    inside.route(True, socket.AF_INET6, None, 0, ct_index)
    for address in addresses:
        _add_address(host, inside, ctid, host_index, ct_index, address)


def make_veth(host: Rtnl, inside: Rtnl, ns_fd: int, ctid: int, netif: ResolvedNetif) -> None:
    """Create one bridged veth pair: the CT end up inside, the host end up (on its bridge)."""
    from vzcore_network.rtnl import NetlinkError

    master = None
    if netif.bridge:
        master = _bridge_index(host, ctid, netif)
    try:
        host.create_veth(netif.host_ifname, netif.host_mac, netif.ifname, netif.mac,
                         peer_netns_fd=ns_fd, master=master)
    except NetlinkError as exc:
        raise VzError(f"CT {ctid}: cannot create veth {netif.ifname} ({netif.host_ifname} on "
                      f"the host): {_pair_failure(exc)}", exit_code=VETH_ERROR) from exc
    host_index = host.link_index(netif.host_ifname)
    ct_index = inside.link_index(netif.ifname)
    if host_index is None or ct_index is None:
        raise VzError(f"CT {ctid}: veth {netif.ifname} vanished while it was set up")
    _veth_filter(host, ctid, host_index, netif)  # before up: nothing passes unchecked
    host.set_link(host_index, up=True)
    inside.set_link(ct_index, up=True)


def _bridge_index(host: Rtnl, ctid: int, netif: ResolvedNetif) -> int:
    error = bridge_problem(host, netif.bridge or "")
    if error:
        raise VzError(f"CT {ctid}: veth {netif.ifname}: {error}", exit_code=VETH_ERROR)
    index = host.link_index(netif.bridge or "")
    assert index is not None
    return index


def bridge_problem(host: Rtnl, bridge: str) -> str:
    """Why ``bridge`` cannot take a CT's host end ("" when it can)."""
    link = host.link(bridge)
    if link is None:
        return f"bridge {bridge} does not exist on the host; create it first"
    if host.link_kind(link) != "bridge":
        return f"{bridge} is not a bridge"
    return ""


def add_proxies(host: Rtnl, proxies: Iterable[Sequence[str]]) -> None:
    """Add the recorded proxy entries, then announce the addresses on those devices."""
    announced: dict[str, list[CtAddress]] = {}
    for device, address in proxies:
        link = host.link(device)
        if link is None:
            continue  # the device went away meanwhile: nothing to proxy on
        if ":" in address:
            neighbours.enable_proxy_ndp(device)
        host.proxy(True, int(link["index"]), address)
        announced.setdefault(device, []).append(parse_address(address))
    for device, addresses in announced.items():
        link = host.link(device)
        mac = link.get_attr("IFLA_ADDRESS") if link is not None else None
        if mac:
            neighbours.announce(device, bytes.fromhex(mac.replace(":", "")), addresses)


def remove_proxies(host: Rtnl, proxies: Iterable[Sequence[str]]) -> None:
    for device, address in proxies:
        index = host.link_index(device)
        if index is not None:
            host.proxy(False, index, address)


def bring_up(record: NetworkRecord, ctid: int, pid: int) -> None:
    """Make what the record lists for the child ``pid`` (``vz_setup_host``)."""
    from vzcore_network.rtnl import Rtnl

    venet = record.venet
    netifs = record.veth
    if not venet and not netifs:
        return
    with Rtnl() as host, Rtnl(pid=pid) as inside, netns_fd(pid) as ns_fd:
        if venet:
            make_venet(host, inside, ns_fd, ctid, recorded_addresses(record))
        for netif in netifs:
            make_veth(host, inside, ns_fd, ctid, netif)
        add_proxies(host, record.proxies)


# -- stop ------------------------------------------------------------------------------------


def remove(record: NetworkRecord) -> None:
    """Delete every recorded host-side object; missing ones are fine (idempotent)."""
    from vzcore_network.rtnl import Rtnl

    links, proxies = record.links, record.proxies
    if not links and not proxies:
        return
    with Rtnl() as host:
        remove_proxies(host, proxies)
        for name in links:
            host.delete_link(name)


# -- live changes -------------------------------------------------------------------------------


def change_addresses(run: Run, ctid: int, pid: int, new: Sequence[CtAddress],
                     setting: neighbours.NeighbourDevs) -> None:
    """Make the running CT's venet addresses ``new`` (``vzctl set --ipadd/--ipdel``)."""
    from vzcore_network.rtnl import Rtnl

    record: NetworkRecord = run.record or NetworkRecord()
    old = recorded_addresses(record)
    old_by_ip = {a.address: a for a in old}
    new_by_ip = {a.address: a for a in new}
    added = [a for a in new if a.address not in old_by_ip]
    changed = [a for a in new if a.address in old_by_ip and old_by_ip[a.address] != a]
    removed = [a for a in old if a.address not in new_by_ip]
    if not (added or changed or removed):
        return
    with Rtnl() as host, Rtnl(pid=pid) as inside:
        new_proxies = plan_proxies(host, setting, added)
        old_proxies = list(record.proxies)
        gone = {str(a.address) for a in removed}
        name = venet_host(ctid)
        links = list(record.links)
        if name not in links:
            links.insert(0, name)
        # on record first: the union of what exists before and after the change
        record = attrs.evolve(record, links=links, proxies=old_proxies + new_proxies,
                              venet=Venet(name, tuple(str(a) for a in [*old, *added])))
        run.record = record
        host_index = host.link_index(name)
        if host_index is None:
            with netns_fd(pid) as ns_fd:
                make_venet(host, inside, ns_fd, ctid, [])
            host_index = host.link_index(name)
        ct_index = inside.link_index(VENET)
        if host_index is None or ct_index is None:
            raise VzError(f"CT {ctid}: its venet pair is missing; restart the CT")
        _ipv6_forwarding(name, ctid, new)
        for address in added:
            _add_address(host, inside, ctid, host_index, ct_index, address)
        for address in changed:
            inside.address(False, ct_index, str(address.address), old_by_ip[address.address].prefixlen)
            inside.address(True, ct_index, str(address.address), address.prefixlen)
        _filter(host, host_index, new)
        add_proxies(host, new_proxies)
        for address in removed:
            _remove_address(host, inside, host_index, ct_index, address)
        remove_proxies(host, [p for p in old_proxies if p[1] in gone])
        run.record = attrs.evolve(record, proxies=[p for p in old_proxies if p[1] not in gone]
                                  + new_proxies, venet=Venet(name, tuple(str(a) for a in new)))


def change_netifs(run: Run, ctid: int, pid: int, new: Sequence[ResolvedNetif]) -> None:
    """Make the running CT's veth interfaces ``new`` (``--netif_add/--netif_del/--ifname``)."""
    from vzcore_network.rtnl import Rtnl

    record: NetworkRecord = run.record or NetworkRecord()
    old = {n.ifname: n for n in record.veth}
    wanted = {n.ifname: n for n in new}
    links = list(record.links)
    links += [n.host_ifname for n in new if n.host_ifname not in links]
    # on record first: the union of what exists before and after the change
    record = attrs.evolve(record, links=links,
                          veth=[*old.values(), *(n for n in new if n.ifname not in old)])
    run.record = record
    with Rtnl() as host, Rtnl(pid=pid) as inside, netns_fd(pid) as ns_fd:
        for ifname, netif in old.items():
            if ifname not in wanted:
                host.delete_link(netif.host_ifname)
        for ifname, netif in wanted.items():
            before = old.get(ifname)
            if before is None:
                make_veth(host, inside, ns_fd, ctid, netif)
            elif before != netif:
                _change_veth(host, inside, ctid, before, netif)
    kept = [n.host_ifname for n in new]
    run.record = attrs.evolve(record, links=([record.venet.host] if record.venet else []) + kept,
                              veth=new)


def _change_veth(host: Rtnl, inside: Rtnl, ctid: int, before: ResolvedNetif,
                 after: ResolvedNetif) -> None:
    host_index = host.link_index(before.host_ifname)
    ct_index = inside.link_index(before.ifname)
    if host_index is None or ct_index is None:
        raise VzError(f"CT {ctid}: veth {before.ifname} is missing; restart the CT",
                      exit_code=VETH_ERROR)
    if after.mac != before.mac:
        inside.set_link(ct_index, mac=after.mac)
    if after.host_ifname != before.host_ifname:
        host.set_link(host_index, up=False)
        host.set_link(host_index, name=after.host_ifname)
        host.set_link(host_index, up=True)
    if after.host_mac != before.host_mac:
        host.set_link(host_index, mac=after.host_mac)
    if (after.mac, after.mac_filter, after.addresses) != (before.mac, before.mac_filter,
                                                          before.addresses):
        # each program is replaced atomically; between the CT's new MAC (above) and the
        # new program, the CT's frames are dropped, never let through unchecked
        _veth_filter(host, ctid, host_index, after)
    if after.bridge != before.bridge:
        host.set_link(host_index, master=_bridge_index(host, ctid, after) if after.bridge else 0)
