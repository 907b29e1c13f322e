"""``vzctl set`` on a running CT: apply each change at once, as a delta.

The change set says how the config text changes; the running CT may already differ from
the config (an earlier ``set`` without ``--save``), so what a command adds and removes is
applied to what the CT has now (its record), not copied from the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vzcore_network import devices, neighbours
from vzcore_network.addresses import CtAddress, parse_list
from vzcore_network.netif import ResolvedNetif, check_host_names, parse_netif_conf

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.runtime import Run


def apply(ct: Container, changes: ChangeSet, run: Run) -> None:
    """Apply the network keys of ``changes`` to the running CT of ``run``."""
    if "IP_ADDRESS" in changes:
        change = changes["IP_ADDRESS"]
        old, new = _addresses(change.old), parse_list(change.new)
        old_set, new_set = set(old), set(new)
        dropped = {a.address for a in old_set - new_set}
        taken = {a.address for a in new_set - old_set}
        live = devices.recorded_addresses(run.record)
        wanted = [] if not new else [a for a in live if a.address not in dropped | taken]
        wanted += [a for a in new if a.address in taken]
        setting = neighbours.parse(ct.get("NEIGHBOUR_DEVS"))
        devices.change_addresses(run, ct.ctid, run.init_pid, wanted, setting)
    if "NETIF" in changes:
        change = changes["NETIF"]
        old_n = {n.ifname: n for n in _netifs(ct, change.old)}
        new_n = {n.ifname: n for n in check_host_names(ct.ctid, parse_netif_conf(change.new))}
        current = {n.ifname: n for n in devices.recorded_netifs(run.record)}
        for ifname in old_n.keys() - new_n.keys():
            current.pop(ifname, None)
        for ifname, netif in new_n.items():
            if old_n.get(ifname) != netif:
                current[ifname] = netif
        devices.change_netifs(run, ct.ctid, run.init_pid, list(current.values()))


def _addresses(text: str | None) -> list[CtAddress]:
    try:
        return parse_list(text)
    except ValueError:
        return []


def _netifs(ct: Container, text: str | None) -> list[ResolvedNetif]:
    """The interfaces of the config before the change (a broken one counts as none:
    validation let the change through because it repairs it)."""
    try:
        return check_host_names(ct.ctid, parse_netif_conf(text))
    except ValueError:
        return []
