"""Bringing up a CT's ``lo`` from the host."""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up(pid: int) -> None:
    """Bring up ``lo`` in ``pid``'s network namespace with two ioctls (no netlink codecs
    needed, so a CT without network settings pays nothing for pyroute2)."""
    from vzcore.linux.namespaces import socket_in_netns

    with socket_in_netns(pid, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
