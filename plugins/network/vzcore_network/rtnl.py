"""A small synchronous rtnetlink client: pyroute2's message classes over a plain socket.

Why not ``pyroute2.IPRoute``: importing it costs 100-150 ms (the package's ``__init__``
imports every pyroute2 module, and ``IPRoute`` itself pulls in asyncio and
multiprocessing), which would more than double ``vzctl start``.  The message classes
(``ifaddrmsg``, ``rtmsg``, ``ndmsg`` and the ``nlmsg``/``nla`` codec) cost about 10 ms
when imported without the package's ``__init__`` (:func:`_codecs`), and a
request is one ``send`` and one ``recv`` on a socket this module opens, in the host's or
a CT's network namespace (:func:`vzcore.linux.namespaces.socket_in_netns`).  The link and
traffic control messages are declared here on pyroute2's ``nlmsg``, with the attributes
this plugin uses: pyroute2's ``ifinfmsg`` and ``tcmsg`` modules import every link type,
qdisc and classifier they know (another 10 and 17 ms).
"""

from __future__ import annotations

import errno
import fcntl
import importlib.util
import os
import socket
import struct
import sys
import types
from collections.abc import Iterator
from functools import cache
from typing import Any

import attrs

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
RTM_NEWQDISC = 36
RTM_NEWTFILTER = 44

IFF_UP = 0x1
IFF_NOARP = 0x80
NTF_PROXY = 0x08
NUD_PERMANENT = 0x80
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
RTM_F_FIB_MATCH = 0x2000
IN6_ADDR_GEN_MODE_NONE = 1
IFA_F_NODAD = 0x02
TC_H_CLSACT = 0xFFFFFFF1
TC_H_INGRESS_PARENT = 0xFFFFFFF2
TC_H_EGRESS_PARENT = 0xFFFFFFF3
ETH_P_ALL = 0x0003
TCA_BPF_FLAG_ACT_DIRECT = 1


SIOCGIFINDEX = 0x8933
IFNAMSIZ = 16


class NetlinkError(OSError):
    """A request the kernel refused; ``errno`` is the kernel's answer."""


ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
               6: "blackhole", 7: "unreachable", 8: "prohibit"}


@attrs.frozen
class Route:
    """What routes an address: ``kind`` (unicast, local, none...), the matching prefix
    length, the output link and whether it goes through a gateway."""

    kind: str
    dst_len: int
    oif: int | None
    gateway: bool


@cache
def _codecs() -> types.SimpleNamespace:
    """pyroute2's message classes, imported without running ``pyroute2/__init__.py``.

    Unless pyroute2 is loaded already, the submodules are imported below a stand-in for
    the package, which stays: the first use of a name the package itself defines (``from
    pyroute2 import IPRoute`` in other code of the process) runs the real ``__init__``
    into the stand-in, so such code works as usual, only later.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None or spec.loader is None:
            raise ImportError("pyroute2 is not installed; install vzcore-network's dependencies")
        stand_in = types.ModuleType("pyroute2")
        stand_in.__path__ = list(spec.submodule_search_locations)
        stand_in.__spec__ = spec
        stand_in.__file__ = spec.origin
        loader = spec.loader

        def complete(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            if importlib.util.find_spec(f"pyroute2.{name}") is not None:
                return importlib.import_module(f"pyroute2.{name}")  # a submodule
            del stand_in.__getattr__
            loader.exec_module(stand_in)
            return getattr(stand_in, name)

        stand_in.__getattr__ = complete  # type: ignore[method-assign]
        sys.modules["pyroute2"] = stand_in
    from pyroute2.netlink import nla, nlmsg
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ndmsg import ndmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    link_fields = (("family", "B"), ("__align", "x"), ("ifi_type", "H"), ("index", "i"),
                   ("flags", "I"), ("change", "I"))

    class ifinfmsg(nlmsg):
        """``struct ifinfomsg`` with the attributes used here.  (pyroute2's own module
        imports a dozen link-type plugins: 10 ms more on every start.)"""

        prefix = "IFLA_"
        fields = link_fields
        nla_map = ((1, "IFLA_ADDRESS", "l2addr"), (3, "IFLA_IFNAME", "asciiz"),
                   (10, "IFLA_MASTER", "uint32"), (18, "IFLA_LINKINFO", "linkinfo"),
                   (26, "IFLA_AF_SPEC", "af_spec"), (28, "IFLA_NET_NS_FD", "uint32"))

        class linkinfo(nla):
            prefix = "IFLA_INFO_"
            nla_map = ((1, "IFLA_INFO_KIND", "asciiz"), (2, "IFLA_INFO_DATA", "info_data"))

            @staticmethod
            def info_data(self: Any, *_argv: Any, **_kwarg: Any) -> Any:
                return self.veth_data if self.get_attr("IFLA_INFO_KIND") == "veth" else self.hex

            class veth_data(nla):
                nla_map = ((1, "VETH_INFO_PEER", "peer"),)

                class peer(nla):
                    prefix = "IFLA_"
                    fields = link_fields
                    nla_map = ((1, "IFLA_ADDRESS", "l2addr"), (3, "IFLA_IFNAME", "asciiz"),
                               (28, "IFLA_NET_NS_FD", "uint32"))

        class af_spec(nla):
            nla_map = ((10, "AF_INET6", "inet6"),)

            class inet6(nla):
                prefix = "IFLA_"
                nla_map = ((8, "IFLA_INET6_ADDR_GEN_MODE", "uint8"),)

    class tcmsg(nlmsg):
        """``struct tcmsg`` with the attributes a clsact qdisc and a bpf filter need."""

        prefix = "TCA_"
        fields = (("family", "B"), ("pad1", "B"), ("pad2", "H"), ("index", "i"),
                  ("handle", "I"), ("parent", "I"), ("info", "I"))
        nla_map = (("TCA_UNSPEC", "none"), ("TCA_KIND", "asciiz"), ("TCA_OPTIONS", "options"))

        class options(nla):
            prefix = "TCA_BPF_"
            nla_map = (("TCA_BPF_UNSPEC", "none"), ("TCA_BPF_ACT", "none"),
                       ("TCA_BPF_POLICE", "none"), ("TCA_BPF_CLASSID", "uint32"),
                       ("TCA_BPF_OPS_LEN", "uint16"), ("TCA_BPF_OPS", "cdata"),
                       ("TCA_BPF_FD", "uint32"), ("TCA_BPF_NAME", "asciiz"),
                       ("TCA_BPF_FLAGS", "uint32"))

    return types.SimpleNamespace(ifinfmsg=ifinfmsg, ifaddrmsg=ifaddrmsg, rtmsg=rtmsg,
                                 ndmsg=ndmsg, tcmsg=tcmsg)


def load() -> None:
    """Import the codecs now (``vz_pre_start`` does, while cgroup attachment waits)."""
    _codecs()


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class Rtnl:
    """One rtnetlink socket; every request waits for the kernel's answer.

    ``Rtnl()`` talks to the caller's network namespace, ``Rtnl(pid=N)`` to that of
    process N.  Use it as a context manager, or :meth:`close` it.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.codecs = _codecs()
        if pid is None:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                      NETLINK_ROUTE)
        else:
            from vzcore.linux.namespaces import socket_in_netns

            self.sock = socket_in_netns(pid, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # -- transport ------------------------------------------------------------------------

    def _send(self, msg: Any, kind: int, flags: int) -> int:
        self.seq += 1
        msg["header"]["type"] = kind
        msg["header"]["flags"] = NLM_F_REQUEST | flags
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    def _replies(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """(type, message bytes) of the answers to request ``seq``, up to ACK/DONE."""
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, msg_seq, _pid = struct.unpack_from("=IHHII", data, offset)
                if length < 16:
                    raise NetlinkError(errno.EIO, "malformed netlink answer")
                chunk = data[offset:offset + length]
                offset += (length + 3) & ~3
                if msg_seq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", chunk, 16)
                    if code:
                        raise NetlinkError(-code, os.strerror(-code))
                    return
                if kind == NLMSG_DONE:
                    return
                yield kind, chunk

    def request(self, msg: Any, kind: int, flags: int = 0) -> None:
        """Send ``msg`` as a ``kind`` request and wait for its acknowledgement."""
        for _ in self._replies(self._send(msg, kind, flags | NLM_F_ACK)):
            pass

    def query(self, msg: Any, kind: int, flags: int = 0) -> list[Any]:
        """Send a get request (``NLM_F_DUMP`` in ``flags`` for a dump); decoded answers."""
        answers = []
        cls = type(msg)
        if not flags & NLM_F_DUMP:
            flags |= NLM_F_ACK  # the answer is followed by an ACK; a dump ends with DONE
        for _kind, chunk in self._replies(self._send(msg, kind, flags)):
            answer = cls(chunk)
            answer.decode()
            answers.append(answer)
        return answers

    # -- links --------------------------------------------------------------------------

    def link(self, name: str) -> Any | None:
        """The link called ``name`` (decoded ``ifinfmsg``), or ``None``."""
        msg = self.codecs.ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        return self._get_link(msg)

    def _get_link(self, msg: Any) -> Any | None:
        """The one link ``msg`` selects (by name or index), or ``None`` when there is none."""
        try:
            found = self.query(msg, RTM_GETLINK)
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        return found[0] if found else None

    def link_index(self, name: str) -> int | None:
        """The index of link ``name`` in this socket's namespace, or ``None``.

        Asked with ``SIOCGIFINDEX`` on this socket (the kernel answers device ioctls for
        the socket's namespace), which reads the device list under RCU: a netlink query
        would wait for the host-wide RTNL lock, which every CT's start takes a dozen times
        (with many starts at once, the queue on it is the largest wait of a start)."""
        if len(name.encode()) >= IFNAMSIZ:
            return None  # no such name can exist
        request = struct.pack("16si12x", name.encode(), 0)
        try:
            answer = fcntl.ioctl(self.sock.fileno(), SIOCGIFINDEX, request)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise NetlinkError(exc.errno or errno.EIO, exc.strerror or str(exc)) from None
        return int(struct.unpack_from("16si", answer)[1])

    def links(self) -> list[Any]:
        """Every link of the namespace (a dump: use only where a scan is unavoidable)."""
        return self.query(self.codecs.ifinfmsg(), RTM_GETLINK, NLM_F_DUMP)

    @staticmethod
    def link_kind(link: Any) -> str | None:
        info = link.get_attr("IFLA_LINKINFO")
        return None if info is None else info.get_attr("IFLA_INFO_KIND")

    @staticmethod
    def _end(name: str, mac: str, *, netns_fd: int | None) -> list[Any]:
        attrs: list[Any] = [("IFLA_IFNAME", name), ("IFLA_ADDRESS", mac.lower())]
        if netns_fd is not None:
            attrs.append(("IFLA_NET_NS_FD", netns_fd))
        return attrs

    def create_veth(self, host: str, host_mac: str, peer: str, peer_mac: str, *,
                    peer_netns_fd: int, noarp: bool = False, master: int | None = None) -> None:
        """A veth pair: ``host`` here, ``peer`` created directly in the namespace of
        ``peer_netns_fd``; both down (``noarp``: neither does ARP or NDP)."""
        flags = IFF_NOARP if noarp else 0
        msg = self.codecs.ifinfmsg()
        msg["flags"] = flags
        msg["change"] = flags
        attrs = self._end(host, host_mac, netns_fd=None)
        if master is not None:
            attrs.append(("IFLA_MASTER", master))
        peer_attrs = {"attrs": self._end(peer, peer_mac, netns_fd=peer_netns_fd),
                      "flags": flags, "change": flags}
        attrs.append(("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", "veth"),
            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer_attrs)]}),
        ]}))
        msg["attrs"] = attrs
        self.request(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)

    def set_link(self, index: int, *, up: bool | None = None, mac: str | None = None,
                 master: int | None = None, name: str | None = None,
                 no_link_local: bool = False) -> None:
        """Change link ``index``: state, MAC, bridge (``master=0`` leaves it), name;
        ``no_link_local`` stops IPv6 link-local addresses (the kernel refuses that at
        creation, and it must come before the link is up)."""
        msg = self.codecs.ifinfmsg()
        msg["index"] = index
        if up is not None:
            msg["flags"] = IFF_UP if up else 0
            msg["change"] = IFF_UP
        attrs: list[Any] = []
        if no_link_local:
            attrs.append(("IFLA_AF_SPEC", {"attrs": [("AF_INET6", {"attrs": [
                ("IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE)]})]}))
        if mac is not None:
            attrs.append(("IFLA_ADDRESS", mac.lower()))
        if master is not None:
            attrs.append(("IFLA_MASTER", master))
        if name is not None:
            attrs.append(("IFLA_IFNAME", name))
        msg["attrs"] = attrs
        self.request(msg, RTM_NEWLINK)

    def delete_link(self, name: str) -> bool:
        """Delete the link ``name``; ``False`` if there was none (idempotent cleanup)."""
        msg = self.codecs.ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        try:
            self.request(msg, RTM_DELLINK)
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # -- addresses and routes ---------------------------------------------------------------

    def address(self, add: bool, index: int, address: str, prefixlen: int) -> None:
        """Add (``add``) or remove ``address/prefixlen`` on link ``index``; removing an
        address that is not there is not an error."""
        family = _family(address)
        msg = self.codecs.ifaddrmsg()
        msg["family"] = family
        msg["prefixlen"] = prefixlen
        msg["index"] = index
        msg["scope"] = RT_SCOPE_UNIVERSE
        attrs: list[Any] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        if family == socket.AF_INET6:
            msg["flags"] = IFA_F_NODAD
        msg["attrs"] = attrs
        try:
            self.request(msg, RTM_NEWADDR if add else RTM_DELADDR,
                         NLM_F_CREATE | NLM_F_REPLACE if add else 0)
        except NetlinkError as exc:
            if add or exc.errno not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                raise

    def route(self, add: bool, family: int, dst: str | None, dst_len: int, oif: int, *,
              exclusive: bool = True) -> None:
        """Add (``add``, refusing an existing route when ``exclusive``) or remove the route
        ``dst/dst_len`` through link ``oif`` (``dst=None``: the default route)."""
        msg = self.codecs.rtmsg()
        msg["family"] = family
        msg["dst_len"] = dst_len
        msg["table"] = RT_TABLE_MAIN
        msg["proto"] = RTPROT_STATIC
        msg["scope"] = RT_SCOPE_LINK
        msg["type"] = RTN_UNICAST
        attrs: list[Any] = [("RTA_OIF", oif)]
        if dst is not None:
            attrs.insert(0, ("RTA_DST", dst))
        msg["attrs"] = attrs
        if add:
            self.request(msg, RTM_NEWROUTE, NLM_F_CREATE | (NLM_F_EXCL if exclusive else NLM_F_REPLACE))
            return
        try:
            self.request(msg, RTM_DELROUTE)
        except NetlinkError as exc:
            if exc.errno not in (errno.ESRCH, errno.ENODEV, errno.ENOENT):
                raise

    def route_to(self, address: str) -> Route:
        """The FIB entry that routes ``address`` (``ip route get fibmatch``)."""
        family = _family(address)
        msg = self.codecs.rtmsg()
        msg["family"] = family
        msg["dst_len"] = 32 if family == socket.AF_INET else 128
        msg["flags"] = RTM_F_FIB_MATCH
        msg["attrs"] = [("RTA_DST", address)]
        try:
            found = self.query(msg, RTM_GETROUTE)
        except NetlinkError as exc:
            if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ESRCH):
                return Route("none", -1, None, False)
            raise
        if not found:
            return Route("none", -1, None, False)
        entry = found[0]
        kind = ROUTE_TYPES.get(int(entry["type"]), "other")
        oif = entry.get_attr("RTA_OIF")
        return Route(kind, int(entry["dst_len"]), None if oif is None else int(oif),
                     entry.get_attr("RTA_GATEWAY") is not None)

    def link_name(self, index: int) -> str | None:
        """The name of link ``index``, or ``None`` when there is none."""
        msg = self.codecs.ifinfmsg()
        msg["index"] = index
        found = self._get_link(msg)
        return None if found is None else found.get_attr("IFLA_IFNAME")

    # -- neighbour proxies --------------------------------------------------------------

    def proxy(self, add: bool, index: int, address: str) -> None:
        """Add or remove a proxy neighbour entry (proxy ARP/NDP) for ``address`` on link
        ``index``; removing a missing one is not an error."""
        msg = self.codecs.ndmsg()
        msg["family"] = _family(address)
        msg["ifindex"] = index
        msg["flags"] = NTF_PROXY
        msg["state"] = NUD_PERMANENT
        msg["attrs"] = [("NDA_DST", address)]
        try:
            self.request(msg, RTM_NEWNEIGH if add else RTM_DELNEIGH,
                         NLM_F_CREATE | NLM_F_REPLACE if add else 0)
        except NetlinkError as exc:
            if add or exc.errno not in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
                raise

    # -- traffic control ------------------------------------------------------------------

    def add_clsact(self, index: int) -> None:
        msg = self.codecs.tcmsg()
        msg["index"] = index
        msg["handle"] = 0xFFFF0000
        msg["parent"] = TC_H_CLSACT
        msg["attrs"] = [("TCA_KIND", "clsact")]
        self.request(msg, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL)

    def set_ingress_bpf(self, index: int, ops: bytes, *, prio: int, name: str,
                        egress: bool = False) -> None:
        """Install or atomically replace a classic BPF direct-action filter at ingress
        (or, ``egress``, at egress) of a device with a clsact qdisc."""
        msg = self.codecs.tcmsg()
        msg["index"] = index
        msg["handle"] = 1
        msg["parent"] = TC_H_EGRESS_PARENT if egress else TC_H_INGRESS_PARENT
        msg["info"] = (prio << 16) | socket.htons(ETH_P_ALL)
        msg["attrs"] = [("TCA_KIND", "bpf"), ("TCA_OPTIONS", {"attrs": [
            ("TCA_BPF_OPS_LEN", len(ops) // 8),
            ("TCA_BPF_OPS", ops),
            ("TCA_BPF_NAME", name),
            ("TCA_BPF_FLAGS", TCA_BPF_FLAG_ACT_DIRECT),
        ]})]
        self.request(msg, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE)
