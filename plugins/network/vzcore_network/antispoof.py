"""Source validation for venet: a classic BPF program for the host end's ingress (pure).

Every packet a CT sends through ``venet0`` arrives on the host at the CT's host end
(``venet<CTID>``).  A ``cls_bpf`` filter in direct-action mode on that device's ingress
(``clsact`` qdisc) runs this program: a packet goes on only if it is IPv4 or IPv6 and its
source address is one of the CT's; anything else (another CT's address, any foreign
address, ARP, any other protocol, a truncated header) is dropped before routing sees it.
The filter lives in the host's network namespace, so the CT cannot change it; the program
is rebuilt and replaced atomically when the CT's addresses change.

Why this and not ``rp_filter`` alone: ``rp_filter`` exists only for IPv4, and its
effective value is the maximum of ``all`` and the device's, so a host with
``net.ipv4.conf.all.rp_filter=2`` (loose) would let a CT use another CT's address.  Why
classic BPF: it needs only ``cls_bpf`` and ``sch_ingress`` (no ``act_gact``, no nftables
and no bpf(2) program loading), the whole program is a list of compares sized by the
CT's own address count, so the per-packet and per-start cost does not grow with the
number of CTs.  The plugin also sets ``rp_filter=1`` on the host end as a second line.

Offsets are from the start of the Ethernet header: ``cls_bpf`` pushes the MAC header
back before running a program at ingress.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from vzcore_network.addresses import IPAddress

# classic BPF opcodes (linux/filter.h)
LD_H_ABS = 0x28
LD_W_ABS = 0x20
LD_W_LEN = 0x80
LD_B_ABS = 0x30
JSET_K = 0x45
SKF_AD_VLAN_TAG_PRESENT = (0xFFFFF000 + 48) & 0xFFFFFFFF
"""Ancillary load (``SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT``): 1 when the frame carries a
VLAN tag outside its data (offloaded), used by the veth programs."""
JEQ_K = 0x15
JGE_K = 0x35
JA = 0x05
RET_K = 0x06

TC_ACT_UNSPEC = 0xFFFFFFFF
"""Go on: the packet continues to other filters and is then accepted."""
TC_ACT_SHOT = 2
"""Drop."""

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_HLEN = 14
MAX_INSNS = 4096

Insn = tuple[int, int, int, int]


def program(addresses: Sequence[IPAddress]) -> list[Insn]:
    """The filter for a CT whose sources may be ``addresses``; drops everything else."""
    v4 = [int(a) for a in addresses if a.version == 4]
    v6 = [a.packed for a in addresses if a.version == 6]
    v4_part: list[Insn] = [
        (LD_W_LEN, 0, 0, 0),
        (JGE_K, 1, 0, ETH_HLEN + 20),      # shorter than an IPv4 header: drop
        (RET_K, 0, 0, TC_ACT_SHOT),
        (LD_W_ABS, 0, 0, ETH_HLEN + 12),    # source address
    ]
    for address in v4:
        v4_part += [(JEQ_K, 0, 1, address), (RET_K, 0, 0, TC_ACT_UNSPEC)]
    v4_part.append((RET_K, 0, 0, TC_ACT_SHOT))
    v6_part: list[Insn] = [
        (LD_W_LEN, 0, 0, 0),
        (JGE_K, 1, 0, ETH_HLEN + 40),
        (RET_K, 0, 0, TC_ACT_SHOT),
    ]
    for packed in v6:
        words = struct.unpack("!4I", packed)
        # each word compared in turn; a mismatch jumps to the next address's block
        for i, word in enumerate(words):
            v6_part.append((LD_W_ABS, 0, 0, ETH_HLEN + 8 + 4 * i))
            v6_part.append((JEQ_K, 0, 2 * (3 - i) + 1, word))
        v6_part.append((RET_K, 0, 0, TC_ACT_UNSPEC))
    v6_part.append((RET_K, 0, 0, TC_ACT_SHOT))
    head: list[Insn] = [
        (LD_H_ABS, 0, 0, 12),               # EtherType
        (JEQ_K, 0, 1, ETH_P_IP),
        (JA, 0, 0, 3),                      # -> v4_part
        (JEQ_K, 0, 1, ETH_P_IPV6),
        (JA, 0, 0, 1 + len(v4_part)),       # -> v6_part
        (RET_K, 0, 0, TC_ACT_SHOT),         # neither IPv4 nor IPv6
    ]
    insns = head + v4_part + v6_part
    if len(insns) > MAX_INSNS:
        raise ValueError(f"{len(addresses)} addresses are more than one venet filter holds")
    return insns


def encode(insns: Sequence[Insn]) -> bytes:
    """``struct sock_filter[]`` as the kernel reads it (``TCA_BPF_OPS``)."""
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in insns)


def run(insns: Sequence[Insn], packet: bytes, *, vlan_tagged: bool = False) -> int:
    """Interpret the program on ``packet`` (what the kernel does; for tests without root).

    Like the kernel, a load past the end of the packet ends the program with 0.  Also
    runs the veth programs (:mod:`vzcore_network.vethfilter`): byte loads, ``JSET`` and
    the ancillary VLAN-tag load (``vlan_tagged``).
    """
    pc = 0
    acc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == LD_W_LEN:
            acc = len(packet)
        elif code == LD_W_ABS and k == SKF_AD_VLAN_TAG_PRESENT:
            acc = int(vlan_tagged)
        elif code in (LD_B_ABS, LD_H_ABS, LD_W_ABS):
            size = {LD_B_ABS: 1, LD_H_ABS: 2, LD_W_ABS: 4}[code]
            if k + size > len(packet):
                return 0
            acc = int.from_bytes(packet[k:k + size], "big")
        elif code == JEQ_K:
            pc += jt if acc == k else jf
        elif code == JGE_K:
            pc += jt if acc >= k else jf
        elif code == JSET_K:
            pc += jt if acc & k else jf
        elif code == JA:
            pc += k
        elif code == RET_K:
            return k
        else:  # pragma: no cover - program() emits only the codes above
            raise ValueError(f"unknown opcode {code:#x}")
