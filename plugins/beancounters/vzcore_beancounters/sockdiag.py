"""Bytes queued on a network namespace's sockets, through ``sock_diag`` netlink.

The same numbers as the ``tx_queue:rx_queue`` columns of ``/proc/net/{tcp,udp}{,6}``
(send and receive queue per socket), at a fraction of the cost: generating those files
makes the kernel walk its whole socket hash tables, sized for the host's memory, once per
file, while a dump skips the empty buckets.  A netlink socket belongs to the network
namespace it was created in, so it is created by a short-lived thread that entered the
CT's namespace (``setns`` changes only the calling thread's namespace).
"""

from __future__ import annotations

import os
import socket
import struct
import threading

from vzcore.linux import libc, namespaces

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10

NLMSG = struct.Struct("=IHHII")
REQUEST = struct.Struct("=BBBxI48x")
"""inet_diag_req_v2: family, protocol, extensions, states, an empty socket id."""
MESSAGE = struct.Struct("=BBBB48xIIIII")
"""inet_diag_msg: family, state, timer, retrans, id, expires, rqueue, wqueue, uid, inode."""


def socket_in(pid: int) -> socket.socket:
    """A sock_diag netlink socket in the network namespace of process ``pid``."""
    ns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def make() -> None:
        try:
            libc.setns(ns_fd, namespaces.FLAGS["net"])
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                                      NETLINK_SOCK_DIAG))
        except BaseException as exc:
            failure.append(exc)

    try:
        thread = threading.Thread(target=make, name="vz-sockdiag")
        thread.start()
        thread.join()
    finally:
        os.close(ns_fd)
    if failure:
        raise failure[0]
    return made[0]


def parse(data: bytes) -> tuple[list[tuple[int, int, int]], bool]:
    """``(state, rqueue, wqueue)`` of each socket in one netlink reply, and whether the
    dump ended (an error ends it too: that protocol's diag module is not loaded)."""
    found: list[tuple[int, int, int]] = []
    offset = 0
    while offset + NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG.unpack_from(data, offset)
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return found, True
        if kind == SOCK_DIAG_BY_FAMILY and length >= NLMSG.size + MESSAGE.size:
            _family, state, _t, _r, _exp, rqueue, wqueue, _uid, _inode = MESSAGE.unpack_from(
                data, offset + NLMSG.size)
            found.append((state, rqueue, wqueue))
        if length < NLMSG.size:
            break
        offset += (length + 3) & ~3
    return found, False


def dump(sock: socket.socket, family: int, protocol: int) -> list[tuple[int, int, int]]:
    """Every socket of ``family``/``protocol`` in the socket's namespace."""
    body = REQUEST.pack(family, protocol, 0, 0xFFFFFFFF)
    sock.send(NLMSG.pack(NLMSG.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                         1, 0) + body)
    found: list[tuple[int, int, int]] = []
    while True:
        chunk, done = parse(sock.recv(1 << 16))
        found.extend(chunk)
        if done:
            return found


def queues(pid: int) -> tuple[int, int, int, int]:
    """TCP send and receive bytes (listeners excluded: their "receive queue" is a backlog
    length) and UDP send and receive bytes, in the network namespace of ``pid``."""
    with socket_in(pid) as sock:
        tcp = [s for family in (socket.AF_INET, socket.AF_INET6)
               for s in dump(sock, family, socket.IPPROTO_TCP) if s[0] != TCP_LISTEN]
        udp = [s for family in (socket.AF_INET, socket.AF_INET6)
               for s in dump(sock, family, socket.IPPROTO_UDP)]
    return (sum(w for _, _, w in tcp), sum(r for _, r, _ in tcp),
            sum(w for _, _, w in udp), sum(r for _, r, _ in udp))
