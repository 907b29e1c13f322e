"""Hook implementations of the network plugin (subsystem ``network``).

venet addresses (``IP_ADDRESS``) and veth interfaces (``NETIF``) are made in
``vz_setup_host`` while the CT's first process waits in its new network namespace, after
``vz_pre_start`` put every name on record; ``vz_post_stop`` deletes by the record.  The
CT's own files (host name, addresses, DNS) are the dists plugin's (its distribution's
actions), from the same config keys.  pyroute2's codecs
are loaded only for a CT that has network settings (see :mod:`vzcore_network.rtnl`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Field, Parameter
    from vzcore.runtime import Run
    from vzcore_network.record import NetworkRecord

DEVICE_KEYS = ("IP_ADDRESS", "NETIF")


def _has_devices(ct: Container) -> bool:
    """Whether the CT's config asks for devices (checked before importing anything)."""
    return any(ct.get(key) for key in DEVICE_KEYS)


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="network",
                      summary="routed venet and bridged veth devices, IPv4 and IPv6, "
                              "anti-spoofing, --nameserver and --searchdomain",
                      record="vzcore_network.record:NetworkRecord")


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore_network import addresses, ctfiles, netif

    yield Parameter(name="ipadd", key="IP_ADDRESS", type=addresses.AddressType(), multiple=True,
                    merge=addresses.merge_add, aliases=("ip",), live=True, on_create=True,
                    help="add a venet IP address (IPv4 or IPv6, ADDR[/PREFIX])")
    yield Parameter(name="ipdel", key="IP_ADDRESS", type=addresses.AddressOrAll(), multiple=True,
                    merge=addresses.merge_del, live=True,
                    help="remove a venet IP address, or all of them")
    yield Parameter(name="netif_add", key="NETIF", type=netif.NetifSpecType(), multiple=True,
                    merge=netif.merge_add, live=True, on_create=True,
                    help="add a veth interface; only the CT's interface name is required")
    yield Parameter(name="netif_del", key="NETIF", type=netif.IfnameOrAll(), multiple=True,
                    merge=netif.merge_del, live=True, help="remove a veth interface, or all")
    yield Parameter(name="ifname", key="NETIF", type=netif.IfnameType(), merge=netif.merge_ifname,
                    context=netif.CHANGEABLE, live=True,
                    help="the veth interface that --mac, --host_ifname, --host_mac, "
                         "--bridge, --mac_filter and --ifaddr change")
    for name, value_type, text in (
        ("mac", netif.MacType(), "MAC address of the CT's end of the --ifname interface"),
        ("host_ifname", netif.IfnameType("host interface name"),
         "host-side name of the --ifname interface"),
        ("host_mac", netif.MacType("host MAC address"),
         "MAC address of the host's end of the --ifname interface"),
        ("bridge", netif.IfnameType("bridge name"),
         "host bridge that the --ifname interface's host end joins"),
    ):
        yield Parameter(name=name, key="NETIF", type=value_type, merge=netif.merge_needs_ifname(name),
                        context=("ifname",), live=True, help=text)
    yield Parameter(name="mac_filter", key="NETIF", type=netif.OnOffType(),
                    merge=netif.merge_needs_ifname("mac_filter"), context=("ifname",), live=True,
                    help="on (default): the host end passes only frames from the --ifname "
                         "interface's MAC, and to it")
    yield Parameter(name="ifaddr", key="NETIF", type=netif.IfaddrType(), multiple=True,
                    merge=netif.merge_needs_ifname("ifaddr"), context=("ifname",), live=True,
                    help="an address the CT uses on the --ifname interface (repeat for "
                         "several; 'none': any): the host end passes no other source address")
    yield Parameter(name="nameserver", key="NAMESERVER", type=ctfiles.NameserverType(),
                    multiple=True, merge=ctfiles.merge_list, live=True, on_create=True,
                    help="DNS server for the CT's /etc/resolv.conf (repeat for several; "
                         "'inherit' copies the host's)")
    yield Parameter(name="searchdomain", key="SEARCHDOMAIN", type=ctfiles.SearchdomainType(),
                    multiple=True, merge=ctfiles.merge_list, live=True, on_create=True,
                    help="DNS search domain for the CT's /etc/resolv.conf (repeat for "
                         "several; 'inherit' copies the host's)")


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field

    yield Field(name="ip", header="IP_ADDR", width=-15, kind="list",
                help="venet IP addresses (of the running CT, else IP_ADDRESS)")
    yield Field(name="netif", header="NETIF", width=-15, kind="list",
                help="veth interfaces (CT name=host name)")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    if verb == "start" and not _has_devices(ct):
        return
    if verb != "start" and not any(key in changes for key in DEVICE_KEYS):
        return
    from vzcore_network import checks

    checks.validate(ct, changes, verb)


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    """Put the CT's devices on record."""
    if not _has_devices(ct):
        return
    from vzcore_network import devices, neighbours, rtnl

    plan = devices.plan_for(ct)
    if plan.empty:
        return
    rtnl.load()  # meanwhile the engine moves the CT's first process into its cgroups
    setting = neighbours.parse(ct.get("NEIGHBOUR_DEVS"))
    proxies: list[tuple[str, str]] = []
    if setting.mode != "none" and plan.addresses:
        with rtnl.Rtnl() as host:
            proxies = devices.plan_proxies(host, setting, plan.addresses)
    run.record = devices.record_of(ct.ctid, plan, proxies)  # one write, before anything exists


@hookimpl
def vz_setup_host(ct: Container, run: Run, pid: int) -> None:
    """Bring up lo, make the recorded venet and veth pairs in the waiting child's netns."""
    from vzcore_network.loopback import loopback_up

    loopback_up(pid)
    record: NetworkRecord | None = run.record
    if record is not None and record.links:
        from vzcore_network import devices

        devices.bring_up(record, ct.ctid, pid)


@hookimpl
def vz_post_stop(ct: Container, run: Run) -> None:
    """Delete the recorded host ends (their peers and routes go with them) and proxies."""
    record: NetworkRecord | None = run.record
    if record is None or not (record.links or record.proxies):
        return
    from vzcore_network import devices

    devices.remove(record)


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    """Change the running CT's addresses and interfaces at once."""
    if run is None:
        return  # a stopped CT gets everything from its config at the next start
    from vzcore_network import live

    live.apply(ct, changes, run)


@hookimpl
def vz_collect(ct: Container, run: Run | None) -> Mapping[str, Any]:
    from vzcore_network import devices

    if run is not None and run.record is not None and run.record.venet is not None:
        ips = [str(a.address) for a in devices.recorded_addresses(run.record)]
        netifs = devices.recorded_netifs(run.record)
    else:
        try:
            plan = devices.plan_for(ct)
        except Exception:
            return {"ip": (ct.get("IP_ADDRESS") or "").split()}
        ips = [str(a.address) for a in plan.addresses]
        netifs = list(plan.netifs) if run is None else devices.recorded_netifs(run.record)
    return {"ip": ips, "netif": [f"{n.ifname}={n.host_ifname}" for n in netifs]}
