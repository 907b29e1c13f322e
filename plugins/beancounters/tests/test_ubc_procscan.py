"""Parsers of the /proc files that count what no cgroup counts (pure), and one real scan."""

from __future__ import annotations

import os
import pty
import socket
import time
from pathlib import Path

import pytest

from vzcore_beancounters import procscan, sockdiag

STATUS = """Name:\tsh
Tgid:\t42
VmLck:\t      8 kB
VmData:\t    400 kB
VmStk:\t    132 kB
SigPnd:\t0000000000000000
ShdPnd:\t0000000000004002
"""

LOCKS = """1: POSIX  ADVISORY  WRITE 42 00:1f:123 0 EOF
1: -> POSIX  ADVISORY  WRITE 43 00:1f:123 0 EOF
2: FLOCK  ADVISORY  WRITE 44 00:1f:124 0 EOF
3: OFDLCK ADVISORY  READ  -1 00:1f:125 0 EOF
4: POSIX  ADVISORY  READ  999 00:1f:126 0 EOF
"""

SOCKSTAT = """sockets: used 300
TCP: inuse 3 orphan 0 tw 0 alloc 10 mem 1
UDP: inuse 2 mem 0
UDPLITE: inuse 0
RAW: inuse 1
FRAG: inuse 0 memory 0
"""

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0        0 1
   1: 0100007F:1F90 0100007F:D2F0 01 00000010:00000020 00:00000000 00000000     0        0 2
"""


def test_status_fields() -> None:
    usage = procscan.ProcessUsage()
    procscan.add_status(usage, procscan.parse_status(STATUS))
    assert (usage.locked_kb, usage.private_kb, usage.pending_signals) == (8, 532, 2)


def test_pty_index() -> None:
    assert procscan.pty_index("/dev/pts/3", None) == 3
    assert procscan.pty_index("/dev/pts/ptmx", "pos:\t0\nflags:\t02\ntty-index:\t7\n") == 7
    assert procscan.pty_index("/dev/ptmx", "tty-index:\t0\n") == 0
    assert procscan.pty_index("/dev/pts/ptmx", "pos:\t0\n") is None
    assert procscan.pty_index("/dev/null", None) is None


def test_locks_count_holders_not_waiters_nor_ofd() -> None:
    assert procscan.count_locks(LOCKS, {42, 43, 44}) == 2


def test_sockstat_and_queues() -> None:
    assert procscan.parse_sockstat(SOCKSTAT) == {"TCP": 3, "UDP": 2, "UDPLITE": 0, "RAW": 1,
                                                 "FRAG": 0}
    assert procscan.queue_totals(TCP, skip_listen=True) == (16, 32)
    assert procscan.queue_totals(TCP, skip_listen=False) == (16, 37)


def test_scan_of_this_process_sees_its_pty_and_files() -> None:
    master, slave = pty.openpty()
    try:
        usage = procscan.scan_processes([os.getpid()])
        assert os.ttyname(slave).rsplit("/", 1)[1].isdigit()
        assert int(os.ttyname(slave).rsplit("/", 1)[1]) in usage.ptys
        assert usage.open_files >= 2
        assert usage.private_kb > 0
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.root
@pytest.mark.netns
def test_socket_queues_match_proc_net() -> None:
    """sock_diag's queue bytes are /proc/net/{tcp,udp}'s, in this test's own namespace."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.sendall(b"x" * 5000)
        sender.sendto(b"y" * 300, receiver.getsockname())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            tcp_send, tcp_receive, _udp_send, udp_receive = sockdiag.queues(os.getpid())
            if tcp_receive == 5000 and udp_receive:
                break
            time.sleep(0.01)
        assert tcp_receive == 5000  # unread by the server
        proc = [procscan.queue_totals(Path(f"/proc/self/net/{name}").read_text(), skip_listen=True)
                for name in ("tcp", "tcp6")]
        assert (tcp_send, tcp_receive) == (sum(t for t, _ in proc), sum(r for _, r in proc))
        udp = procscan.queue_totals(Path("/proc/self/net/udp").read_text(), skip_listen=False)
        assert udp_receive == udp[1] > 0
        assert procscan.scan_queues(os.getpid()).tcp_receive == 5000
    finally:
        for s in (listener, client, server, receiver, sender):
            s.close()
