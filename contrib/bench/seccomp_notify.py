"""The cost of one system call answered by vzcore's seccomp supervisor (docs/security.md,
docs/disk.md), against the same call without interception, in one run.  As root:

    .venv/bin/python contrib/bench/seccomp_notify.py [--calls N]

It starts the real supervisor (``python -m vzcore.linux.notifyd``) in a temporary
directory, registers a pretend CT whose "init" is a child of this script (disk figures from
two files, memory from a cgroup it makes with a 256 MB limit), has the child install the
filter and hand its listener over exactly as a CT's processes do, then times in the child:
``statfs("/")`` answered with the figures, ``statfs("/proc")`` let through
(``SECCOMP_USER_NOTIF_FLAG_CONTINUE``) and ``sysinfo`` answered.  Prints microseconds per
call (median of 5 rounds of N calls) before and after the filter.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vzcore.linux import cgroups, seccomp, seccomp_notify
from vzcore.linux.daemon import Daemon
from vzcore.linux.procfs import ProcessId

_libc = ctypes.CDLL(None, use_errno=True)
ROUNDS = 5


def _time(call: object, count: int) -> float:
    """Median microseconds per call over :data:`ROUNDS` rounds of ``count`` calls."""
    rounds = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for _ in range(count):
            call()  # type: ignore[operator]
        rounds.append((time.perf_counter() - began) / count * 1e6)
    return statistics.median(rounds)


def _loops(count: int) -> dict[str, float]:
    buffer = ctypes.create_string_buffer(128)
    root, proc = b"/", b"/proc"

    def statfs_root() -> None:
        if _libc.statfs(root, buffer) != 0:
            raise OSError(ctypes.get_errno(), "statfs /")

    def statfs_proc() -> None:
        if _libc.statfs(proc, buffer) != 0:
            raise OSError(ctypes.get_errno(), "statfs /proc")

    def sysinfo() -> None:
        if _libc.sysinfo(buffer) != 0:
            raise OSError(ctypes.get_errno(), "sysinfo")

    return {"statfs / (answered)": _time(statfs_root, count),
            "statfs /proc (continued)": _time(statfs_proc, count),
            "sysinfo (answered)": _time(sysinfo, count)}


def _child(handover: str, go: int, results: int, count: int) -> None:
    before = _loops(count)
    os.read(go, 1)  # the supervisor has our hand-over socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(handover)
        listener = seccomp.install(seccomp.notify_filter(("statfs", "fstatfs", "sysinfo")),
                                   seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER)
        answer = seccomp_notify.send_listener(sock, listener)
        os.close(listener)
    if answer != b"OK":
        raise SystemExit(f"hand-over refused: {answer!r}")
    buffer = ctypes.create_string_buffer(128)
    _libc.statfs(b"/", buffer)
    answered = seccomp_notify.statfs_fields(buffer.raw)
    after = _loops(count)
    os.write(results, json.dumps({"before": before, "after": after,
                                  "answered_blocks": answered["blocks"]}).encode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (default 2000)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the supervisor reads its callers' memory")
    with tempfile.TemporaryDirectory(prefix="vzbench-notify-") as tmp:
        directory = Path(tmp)
        (directory / "used").write_text(str(10 << 20))
        (directory / "limit").write_text(str(50 << 20))
        group = cgroups.CgroupSet.plan("/", f"vzbench-notify-{os.getpid()}")
        group.create()
        daemon = Daemon.named(directory / "d", "notify")
        process = None
        try:
            group.write_limit("memory", "memory.max" if group.version == 2
                              else "memory.limit_in_bytes", 256 << 20)
            with daemon.locked():
                _popen, process = daemon.spawn([sys.executable, "-m", "vzcore.linux.notifyd",
                                                str(daemon.directory)])
            figures = {"ctid": 1, "used_file": str(directory / "used"),
                       "limit_file": str(directory / "limit"), "cgroups": group.to_json()}
            _request(daemon, process, {"op": "register", "ct": figures})
            go_r, go_w = os.pipe()
            results_r, results_w = os.pipe()
            child = os.fork()
            if child == 0:
                try:
                    os.close(go_w)
                    os.close(results_r)
                    _child(str(directory / "handover"), go_r, results_w, args.calls)
                finally:
                    os._exit(0)
            os.close(go_r)
            os.close(results_w)
            init = ProcessId.of(child)
            assert init is not None
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as handover:
                handover.bind(str(directory / "handover"))
                handover.listen(4)
                _request(daemon, process, {"op": "root", "ctid": 1,
                                           "init": [init.pid, init.start_time]},
                         [handover.fileno()])
            os.write(go_w, b"G")
            data = b""
            while chunk := os.read(results_r, 65536):
                data += chunk
            os.waitpid(child, 0)
            result = json.loads(data or b"{}")
        finally:
            if process is not None:
                daemon.stop(process)
            group.remove()
    if not result:
        raise SystemExit("the child reported nothing; see the supervisor's log")
    print(f"seccomp user notification, {ROUNDS} rounds x {args.calls} calls, median "
          f"microseconds per call ({os.cpu_count()} CPUs)")
    print(f"{'call':28} {'plain':>8} {'intercepted':>12} {'added':>8}")
    for name, plain in result["before"].items():
        after = result["after"][name]
        print(f"{name:28} {plain:8.1f} {after:12.1f} {after - plain:8.1f}")
    print(f"(statfs / answered with {result['answered_blocks']} blocks: the 50 MB limit)")
    return 0


def _request(daemon: Daemon, process: ProcessId, message: dict[str, object],
             fds: list[int] | None = None) -> None:
    with daemon.connect(process, kind=socket.SOCK_SEQPACKET) as sock:
        socket.send_fds(sock, [json.dumps(message).encode()], fds or [])
        answer = json.loads(sock.recv(65536) or b"{}")
    if not answer.get("ok"):
        raise SystemExit(f"supervisor: {answer}")


if __name__ == "__main__":
    sys.exit(main())
