"""Source validation for bridged veth: classic BPF programs for the host end (pure).

What a CT sends through a veth arrives at the host end's ingress, before the bridge
learns its source MAC and before the host's ARP/NDP code sees it: a ``cls_bpf`` filter
there (the same mechanism as venet's, :mod:`vzcore_network.antispoof`) decides.  Two
switches, per interface (``NETIF``):

``mac_filter=on`` (the default)
    the Ethernet source and the ARP sender hardware address must be the CT's MAC, so the
    bridge never learns another MAC on the CT's port and the CT cannot change its MAC;
    and on the host end's egress only frames to the CT's MAC or to a group address go
    out, so the CT does not see unicast meant for others (OpenVZ's meaning).
``ip=ADDR ...`` (the CT's configured addresses; no filtering by address without them)
    IPv4 and IPv6 sources, ARP sender addresses and the target of every Neighbour
    Advertisement must be among them (plus the unspecified addresses, which claim
    nothing: ``0.0.0.0`` of DHCP clients and ARP probes, ``::`` of DAD, and the EUI-64
    link-local address of the CT's MAC); VLAN-tagged frames, whose
    inner addresses the program does not parse, and IPv6 routing, destination option
    and authentication headers, behind which NDP could hide, are dropped; a hop-by-hop
    header passes only in front of an MLD message (MLD needs it).  So the CT cannot
    claim another CT's or the host's address in any neighbour table.

Every other frame (another EtherType: LLDP, PPPoE...) passes once its MAC is checked.
Offsets are from the start of the Ethernet header (``cls_bpf`` sees it at ingress and at
egress).  Programs are small, sized by the CT's own addresses.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

from vzcore_network.addresses import IPAddress
from vzcore_network.antispoof import (
    ETH_HLEN,
    ETH_P_IP,
    ETH_P_IPV6,
    JA,
    JEQ_K,
    JGE_K,
    JSET_K,
    LD_B_ABS,
    LD_H_ABS,
    LD_W_ABS,
    LD_W_LEN,
    MAX_INSNS,
    RET_K,
    SKF_AD_VLAN_TAG_PRESENT,
    TC_ACT_SHOT,
    TC_ACT_UNSPEC,
    Insn,
)

ETH_P_ARP = 0x0806
VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_ICMPV6, IPPROTO_DSTOPTS, IPPROTO_AH = 0, 43, 58, 60, 51
ND_NEIGHBOR_ADVERT = 136
MLD_TYPES = (130, 131, 132, 143)
ARP_FIXED = (1, ETH_P_IP, 0x0604)
"""ARP hardware type Ethernet, protocol IPv4, address lengths 6 and 4."""

IP6 = ETH_HLEN           # the IPv6 header
ICMP6 = ETH_HLEN + 40    # an ICMPv6 header right behind it


_Item = tuple[int, str, str, "int | str"]
"""An instruction with its jump targets as labels (a JA's target is its ``k``)."""


class _Asm:
    """A tiny assembler: jumps name labels (``None``: the next instruction); a conditional
    jump farther than classic BPF's 8-bit offsets reaches its target through a ``JA``
    (32-bit) inserted after it, so the program's size is the only limit."""

    def __init__(self) -> None:
        self.items: list[_Item | str] = []   # an instruction, or a label (a str)
        self.count = 0

    def label(self, name: str) -> None:
        self.items.append(name)

    def _fresh(self) -> str:
        self.count += 1
        return f" {self.count}"  # (a space: never one of the program's names)

    def op(self, code: int, k: int = 0) -> None:
        self.items.append((code, "", "", k))

    def _jump(self, code: int, k: int, true: str | None, false: str | None) -> None:
        after = self._fresh()
        self.items.append((code, true or after, false or after, k))
        self.label(after)

    def jeq(self, k: int, true: str | None = None, false: str | None = None) -> None:
        self._jump(JEQ_K, k, true, false)

    def jge(self, k: int, true: str | None = None, false: str | None = None) -> None:
        self._jump(JGE_K, k, true, false)

    def jset(self, k: int, true: str | None = None, false: str | None = None) -> None:
        self._jump(JSET_K, k, true, false)

    def goto(self, label: str) -> None:
        self.items.append((JA, "", "", label))

    def ret(self, verdict: int) -> None:
        self.op(RET_K, verdict)

    def _positions(self) -> dict[str, int]:
        positions: dict[str, int] = {}
        pc = 0
        for item in self.items:
            if isinstance(item, str):
                positions[item] = pc
            else:
                pc += 1
        return positions

    def _route_far_jumps(self, positions: dict[str, int]) -> bool:
        """Send each conditional jump that is out of range through a JA after it; False
        if there was none (insertions can push others out of range: the caller repeats)."""
        items: list[_Item | str] = []
        pc = 0
        for item in self.items:
            if isinstance(item, str):
                items.append(item)
                continue
            code, jt, jf, k = item
            far = [target for target in (jt, jf) if code not in (JA, RET_K) and target
                   and positions[target] - pc - 1 > 255]
            vias = {target: self._fresh() for target in far}
            # a branch that is not far keeps its label, which still names the instruction
            # after the jump, now after the JAs
            items.append((code, vias.get(jt, jt), vias.get(jf, jf), k))
            for target, via in vias.items():
                items += [via, (JA, "", "", target)]
            pc += 1
        changed = len(items) != len(self.items)
        self.items = items
        return changed

    def assemble(self) -> list[Insn]:
        positions = self._positions()
        while self._route_far_jumps(positions):
            positions = self._positions()
        out: list[Insn] = []
        for item in self.items:
            if isinstance(item, str):
                continue
            code, jt, jf, k = item
            pc = len(out)
            if code == JA:
                out.append((JA, 0, 0, positions[str(k)] - pc - 1))
            elif jt:
                out.append((code, positions[jt] - pc - 1, positions[jf] - pc - 1, int(k)))
            else:
                out.append((code, 0, 0, int(k)))
        if len(out) > MAX_INSNS:
            raise ValueError(f"more addresses than one veth filter holds ({MAX_INSNS} "
                             "instructions); list fewer with --ifaddr")
        return out


def _mac_words(mac: str) -> tuple[int, int]:
    raw = bytes.fromhex(mac.replace(":", ""))
    return int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:], "big")


def _check_mac(asm: _Asm, offset: int, mac: str, fail: str) -> None:
    high, low = _mac_words(mac)
    asm.op(LD_W_ABS, offset)
    asm.jeq(high, None, fail)
    asm.op(LD_H_ABS, offset + 4)
    asm.jeq(low, None, fail)


def _check_v6(asm: _Asm, offset: int, addresses: Sequence[bytes], ok: str, fail: str) -> None:
    """Jump to ``ok`` if the 16 bytes at ``offset`` are one of ``addresses``, else ``fail``."""
    for n, packed in enumerate(addresses):
        following = f"{ok}-{offset}-{n + 1}" if n + 1 < len(addresses) else fail
        for i, word in enumerate(struct.unpack("!4I", packed)):
            asm.op(LD_W_ABS, offset + 4 * i)
            asm.jeq(word, ok if i == 3 else None, following)
        asm.label(f"{ok}-{offset}-{n + 1}")
    if not addresses:
        asm.goto(fail)


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address the kernel gives an interface with ``mac``."""
    raw = bytearray(bytes.fromhex(mac.replace(":", "")))
    raw[0] ^= 0x02
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:]))


def ingress(mac: str, mac_filter: bool, addresses: Sequence[IPAddress] | None) -> list[Insn]:
    """The program for what the CT with ``mac`` sends; ``addresses`` ``None``: any IP."""
    asm = _Asm()
    if not mac_filter and addresses is None:
        asm.ret(TC_ACT_UNSPEC)
        return asm.assemble()
    if addresses is not None:
        asm.op(LD_W_ABS, SKF_AD_VLAN_TAG_PRESENT)
        asm.jeq(0, None, "drop")
    if mac_filter:
        _check_mac(asm, 6, mac, "drop")
    asm.op(LD_H_ABS, 12)
    asm.jeq(ETH_P_ARP, "arp")
    if addresses is not None:
        asm.jeq(ETH_P_IP, "ipv4")
        asm.jeq(ETH_P_IPV6, "ipv6")
        for vlan in VLAN_TYPES:
            asm.jeq(vlan, "drop")
    asm.goto("pass")

    v4 = [int(a) for a in addresses or () if a.version == 4]
    v6 = [a.packed for a in addresses or () if a.version == 6]
    v6_sources = [bytes(16), *v6, link_local(mac).packed]

    asm.label("arp")
    asm.op(LD_W_LEN)
    asm.jge(ETH_HLEN + 28, None, "drop")
    for offset, value in zip((14, 16, 18), ARP_FIXED, strict=True):
        asm.op(LD_H_ABS, offset)
        asm.jeq(value, None, "drop")
    if mac_filter:
        _check_mac(asm, ETH_HLEN + 8, mac, "drop")   # sender hardware address
    if addresses is None:
        asm.goto("pass")
    else:
        asm.op(LD_W_ABS, ETH_HLEN + 14)               # sender protocol address
        asm.jeq(0, "pass")                         # an RFC 5227 probe claims nothing
        for address in v4:
            asm.jeq(address, "pass")
        asm.goto("drop")

        asm.label("ipv4")
        asm.op(LD_W_LEN)
        asm.jge(ETH_HLEN + 20, None, "drop")
        asm.op(LD_W_ABS, ETH_HLEN + 12)
        asm.jeq(0, "pass")                         # a DHCP client's: updates no table
        for address in v4:
            asm.jeq(address, "pass")
        asm.goto("drop")

        asm.label("ipv6")
        asm.op(LD_W_LEN)
        asm.jge(ICMP6, None, "drop")
        _check_v6(asm, IP6 + 8, v6_sources, "v6-source-ok", "drop")
        asm.label("v6-source-ok")
        asm.op(LD_B_ABS, IP6 + 6)                     # next header
        asm.jeq(IPPROTO_ICMPV6, "icmp6")
        asm.jeq(IPPROTO_HOPOPTS, "hop-by-hop")
        for header in (IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_AH):
            asm.jeq(header, "drop")
        asm.goto("pass")

        asm.label("icmp6")
        asm.op(LD_B_ABS, ICMP6)
        asm.jeq(ND_NEIGHBOR_ADVERT, None, "pass")
        asm.op(LD_W_LEN)
        asm.jge(ICMP6 + 24, None, "drop")
        _check_v6(asm, ICMP6 + 8, [*v6, link_local(mac).packed], "pass", "drop")

        asm.label("hop-by-hop")                       # only MLD's: 8 bytes, then ICMPv6
        asm.op(LD_W_LEN)
        asm.jge(ICMP6 + 12, None, "drop")
        asm.op(LD_B_ABS, ICMP6)
        asm.jeq(IPPROTO_ICMPV6, None, "drop")
        asm.op(LD_B_ABS, ICMP6 + 1)
        asm.jeq(0, None, "drop")
        asm.op(LD_B_ABS, ICMP6 + 8)
        for mld in MLD_TYPES:
            asm.jeq(mld, "pass")
        asm.goto("drop")

    asm.label("pass")
    asm.ret(TC_ACT_UNSPEC)
    asm.label("drop")
    asm.ret(TC_ACT_SHOT)
    return asm.assemble()


def egress(mac: str, mac_filter: bool) -> list[Insn]:
    """The program for what goes to the CT: frames to its MAC or to a group address
    (everything without ``mac_filter``)."""
    asm = _Asm()
    if not mac_filter:
        asm.ret(TC_ACT_UNSPEC)
        return asm.assemble()
    asm.op(LD_B_ABS, 0)
    asm.jset(1, "pass")                            # broadcast and multicast
    _check_mac(asm, 0, mac, "drop")
    asm.label("pass")
    asm.ret(TC_ACT_UNSPEC)
    asm.label("drop")
    asm.ret(TC_ACT_SHOT)
    return asm.assemble()
