"""Usage that no cgroup counts, read from ``/proc``: per process, per network namespace.

Everything is read from the host's procfs by host PID, never through a path inside the CT
(a CT could mount a file system there that never answers).  Parsers are pure functions
of the files' text, tested without root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import attrs

TCP_LISTEN = "0A"


@attrs.define
class ProcessUsage:
    """What the CT's processes hold, summed over them."""

    open_files: int = 0
    locked_kb: int = 0
    private_kb: int = 0
    pending_signals: int = 0
    ptys: set[int] = attrs.field(factory=set)


def parse_status(text: str) -> dict[str, str]:
    """``/proc/PID/status`` as ``{field: value}``."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def _kb(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def _bits(mask: str | None) -> int:
    return bin(int(mask, 16)).count("1") if mask else 0


def add_status(usage: ProcessUsage, status: Mapping[str, str]) -> None:
    """Add one process's ``status`` fields: VmLck (locked), VmData + VmStk (private
    memory, as privvmpages counts it), and the signals pending to it (SigPnd, ShdPnd:
    bit masks, so repeated real-time signals count once)."""
    usage.locked_kb += _kb(status.get("VmLck"))
    usage.private_kb += _kb(status.get("VmData")) + _kb(status.get("VmStk"))
    usage.pending_signals += _bits(status.get("SigPnd")) + _bits(status.get("ShdPnd"))


def pty_index(link: str, fdinfo: str | None) -> int | None:
    """The pty a descriptor holds: ``/dev/pts/N`` (a slave) or the ``tty-index`` of a
    ``/dev/ptmx`` master's fdinfo; ``None`` for anything else."""
    if link.startswith("/dev/pts/"):
        tail = link[len("/dev/pts/"):]
        if tail.isdigit():
            return int(tail)
        if tail != "ptmx":
            return None
    elif link != "/dev/ptmx":
        return None
    for line in (fdinfo or "").splitlines():
        key, _, value = line.partition(":")
        if key == "tty-index" and value.strip().isdigit():
            return int(value)
    return None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def scan_processes(pids: Iterable[int]) -> ProcessUsage:
    """Walk every process: its status and its descriptors."""
    usage = ProcessUsage()
    for pid in pids:
        status = _read(f"/proc/{pid}/status")
        if status is None:
            continue
        add_status(usage, parse_status(status))
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        usage.open_files += len(fds)
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link.startswith("/dev/pt"):
                index = pty_index(link, _read(f"/proc/{pid}/fdinfo/{fd}"))
                if index is not None:
                    usage.ptys.add(index)
    return usage


def count_locks(text: str, pids: set[int]) -> int:
    """File locks held by ``pids`` in ``/proc/locks`` (blocked waiters, ``->``, and OFD
    locks, which name no process, are not counted)."""
    count = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[1] == "->":
            continue
        try:
            if int(fields[4]) in pids:
                count += 1
        except ValueError:
            continue
    return count


def parse_sockstat(text: str) -> dict[str, int]:
    """``/proc/net/sockstat{,6}``: ``{"TCP": inuse, "UDP": inuse, ...}`` (in-use counts
    are per network namespace)."""
    counts = {}
    for line in text.splitlines():
        proto, _, rest = line.partition(":")
        words = rest.split()
        if "inuse" in words:
            index = words.index("inuse")
            if index + 1 < len(words) and words[index + 1].isdigit():
                counts[proto] = int(words[index + 1])
    return counts


def queue_totals(text: str, *, skip_listen: bool) -> tuple[int, int]:
    """Summed ``tx_queue:rx_queue`` of ``/proc/net/{tcp,udp,raw}{,6}`` (bytes queued per
    socket); a listening TCP socket's rx_queue is its backlog length, so it is skipped."""
    tx = rx = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or (skip_listen and fields[3] == TCP_LISTEN):
            continue
        queues = fields[4].split(":")
        if len(queues) == 2:
            try:
                tx += int(queues[0], 16)
                rx += int(queues[1], 16)
            except ValueError:
                continue
    return tx, rx


@attrs.frozen
class NetUsage:
    """Sockets and socket buffers in the CT's network namespace."""

    tcp_sockets: int = 0
    other_sockets: int = 0
    tcp_send: int = 0
    tcp_receive: int = 0
    other_send: int = 0
    dgram_receive: int = 0


def scan_sockets(pid: int) -> NetUsage:
    """Socket counts of the network namespace of ``pid`` (the CT's init): the in-use
    counters of ``/proc/PID/net/sockstat{,6}`` and the UNIX sockets listed there (cheap)."""
    base = f"/proc/{pid}/net"
    stats = {**parse_sockstat(_read(f"{base}/sockstat") or ""),
             **parse_sockstat(_read(f"{base}/sockstat6") or "")}
    unix = max(0, len((_read(f"{base}/unix") or "").splitlines()) - 1)
    return NetUsage(
        tcp_sockets=stats.get("TCP", 0) + stats.get("TCP6", 0),
        other_sockets=unix + sum(stats.get(p, 0) for p in ("UDP", "UDP6", "UDPLITE", "UDPLITE6",
                                                            "RAW", "RAW6")))


def scan_queues(pid: int) -> NetUsage:
    """Bytes queued on the namespace's TCP, UDP and raw sockets: TCP and UDP through
    sock_diag (:mod:`.sockdiag`), raw sockets (a small table) from ``/proc/PID/net``; the
    /proc files for all of them when sock_diag is not available."""
    from vzcore_beancounters import sockdiag

    base = f"/proc/{pid}/net"
    raw = [queue_totals(_read(f"{base}/{name}") or "", skip_listen=False) for name in ("raw", "raw6")]
    try:
        tcp_send, tcp_receive, udp_send, udp_receive = sockdiag.queues(pid)
    except OSError:
        tcp = [queue_totals(_read(f"{base}/{n}") or "", skip_listen=True) for n in ("tcp", "tcp6")]
        udp = [queue_totals(_read(f"{base}/{n}") or "", skip_listen=False) for n in ("udp", "udp6")]
        tcp_send, tcp_receive = sum(t for t, _ in tcp), sum(r for _, r in tcp)
        udp_send, udp_receive = sum(t for t, _ in udp), sum(r for _, r in udp)
    return NetUsage(tcp_send=tcp_send, tcp_receive=tcp_receive,
                    other_send=udp_send + sum(t for t, _ in raw),
                    dgram_receive=udp_receive + sum(r for _, r in raw))
