"""The supervisor (vzcore.linux.notifyd) on the real kernel without a CT: a pretend CT
whose init is PID 1 of a fresh PID namespace, figures from files and a memory cgroup the
test makes.  fstatfs, a live limit change, the kernel's own answer for other file
systems, sysinfo, the refusals of the hand-over, and the listeners dropped with their
processes."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vzcore.linux import cgroups, libc, notify_answers, seccomp, seccomp_notify
from vzcore.linux.daemon import Daemon
from vzcore.linux.procfs import ProcessId

pytestmark = pytest.mark.root
MB = 1 << 20
CLONE_NEWPID = 0x20000000
PROC_SUPER_MAGIC = 0x9FA0
_libc = ctypes.CDLL(None, use_errno=True)


class Supervisor:
    def __init__(self, directory: Path, group: cgroups.CgroupSet) -> None:
        self.directory = directory
        self.daemon = Daemon.named(directory / "d", "notify")
        with self.daemon.locked():
            _popen, self.process = self.daemon.spawn(
                [sys.executable, "-m", "vzcore.linux.notifyd", str(self.daemon.directory)])
        self.used = directory / "used"
        self.limit = directory / "limit"
        self.used.write_text(str(10 * MB))
        self.limit.write_text(str(50 * MB))
        self.group = group

    def request(self, message: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        with self.daemon.connect(self.process, kind=socket.SOCK_SEQPACKET) as sock:
            socket.send_fds(sock, [json.dumps(message).encode()], fds or [])
            answer: dict[str, Any] = json.loads(sock.recv(65536))
        return answer

    def register(self, ctid: int = 1) -> None:
        figures = {"ctid": ctid, "used_file": str(self.used), "limit_file": str(self.limit),
                   "cgroups": self.group.to_json()}
        assert self.request({"op": "register", "ct": figures})["ok"]


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    group = cgroups.CgroupSet.plan("/", f"vztest-notify-{os.getpid()}")
    group.create()
    group.write_limit("memory", "memory.max" if group.version == 2 else "memory.limit_in_bytes",
                      256 * MB)
    sup = Supervisor(tmp_path, group)
    try:
        yield sup
    finally:
        sup.daemon.stop(sup.process)
        group.remove()


class PretendCt:
    """PID 1 of a new PID namespace (in the test's cgroup), waiting to run a body."""

    def __init__(self, sup: Supervisor, body: Callable[[], dict[str, Any]]) -> None:
        self.handover = str(sup.directory / "handover")
        pid_r, pid_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.parent = os.fork()
        if self.parent == 0:
            try:
                os.close(pid_r)
                libc.unshare(CLONE_NEWPID)
                init = os.fork()
                if init == 0:
                    sup.group.attach(os.getpid())
                    os.close(self.go_w)
                    os.read(self.go_r, 1)
                    try:
                        result = body()
                    except BaseException:  # shown by the test's failure
                        result = {"error": traceback.format_exc()}
                    os.write(out_w, json.dumps(result).encode())
                    os._exit(0)
                os.write(pid_w, str(init).encode())
                os.waitpid(init, 0)
            finally:
                os._exit(0)
        os.close(pid_w)
        os.close(out_w)
        self.init = ProcessId.of(int(os.read(pid_r, 64)))
        os.close(pid_r)
        assert self.init is not None

    def run(self, sup: Supervisor) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as handover:
            handover.bind(self.handover)
            handover.listen(4)
            assert self.init is not None
            answer = sup.request({"op": "root", "ctid": 1,
                                  "init": [self.init.pid, self.init.start_time]},
                                 [handover.fileno()])
        assert answer["ok"], answer
        os.write(self.go_w, b"G")
        data = b""
        while chunk := os.read(self.out_r, 65536):
            data += chunk
        os.waitpid(self.parent, 0)
        result: dict[str, Any] = json.loads(data or b"{}")
        assert "error" not in result, result["error"]
        return result


def intercept(handover: str, calls: tuple[str, ...] = ("statfs", "fstatfs", "sysinfo")) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(handover)
        listener = seccomp.install(seccomp.notify_filter(calls),
                                   seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER)
        try:
            return seccomp_notify.send_listener(sock, listener)
        finally:
            os.close(listener)


def fstatfs(path: str) -> dict[str, int]:
    fd = os.open(path, os.O_RDONLY)
    buffer = ctypes.create_string_buffer(seccomp_notify.STATFS_SIZE)
    try:
        assert _libc.fstatfs(fd, buffer) == 0
    finally:
        os.close(fd)
    return seccomp_notify.statfs_fields(buffer.raw)


def sysinfo() -> dict[str, int]:
    buffer = ctypes.create_string_buffer(seccomp_notify.SYSINFO.size)
    assert _libc.sysinfo(buffer) == 0
    return seccomp_notify.sysinfo_fields(buffer.raw)


def test_answers_fstatfs_sysinfo_and_leaves_other_file_systems(supervisor: Supervisor) -> None:
    supervisor.register()
    limit_file = str(supervisor.limit)
    handover_path = str(supervisor.directory / "handover")

    def body() -> dict[str, Any]:
        answer = intercept(handover_path)
        root = fstatfs("/")
        with open(limit_file, "w") as f:
            f.write(str(80 * MB))  # as `vzctl set --diskspace` on a running CT
        return {"answer": answer.decode(), "root": root, "after": fstatfs("/"),
                "proc": fstatfs("/proc"), "sysinfo": sysinfo()}

    ct = PretendCt(supervisor, body)
    result = ct.run(supervisor)
    assert result["answer"] == "OK"
    root, after = result["root"], result["after"]
    assert root["blocks"] * root["bsize"] == 50 * MB
    assert root["bfree"] * root["bsize"] == 40 * MB == root["bavail"] * root["bsize"]
    assert after["blocks"] * after["bsize"] == 80 * MB
    host_root = os.open("/", os.O_PATH)
    try:  # the kernel's own fields but the size: type, block size, flags
        kernel = seccomp_notify.statfs_fields(notify_answers.kernel_statfs(host_root))
    finally:
        os.close(host_root)
    assert (root["type"], root["bsize"], root["flags"]) == \
        (kernel["type"], kernel["bsize"], kernel["flags"])
    assert result["proc"]["type"] == PROC_SUPER_MAGIC
    info = result["sysinfo"]
    assert info["totalram"] * info["mem_unit"] == 256 * MB
    assert 0 < info["freeram"] * info["mem_unit"] < 256 * MB
    assert info["procs"] >= 1
    assert info["uptime"] <= 60  # since the pretend CT's init started, not the host's boot


def test_hand_over_refuses_strangers_and_non_listeners(supervisor: Supervisor) -> None:
    supervisor.register()

    def body() -> dict[str, Any]:
        time.sleep(0.5)  # alive while the host side tries
        return {}

    ct = PretendCt(supervisor, body)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as handover:
        handover.bind(ct.handover)
        handover.listen(4)
        assert ct.init is not None
        assert supervisor.request({"op": "root", "ctid": 1,
                                   "init": [ct.init.pid, ct.init.start_time]},
                                  [handover.fileno()])["ok"]
    os.write(ct.go_w, b"G")
    # This process is not in the CT's PID namespace: refused even with a real listener.
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_fd, intercept(ct.handover))
        finally:
            os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 256).startswith(b"NO not a process of the CT")
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert supervisor.request({"op": "status"})["cts"] == {"1": 0}
    os.waitpid(ct.parent, 0)
    # The CT's init exited: the CT is dropped.
    deadline = time.monotonic() + 30
    while supervisor.request({"op": "status"})["cts"]:
        assert time.monotonic() < deadline, "the CT was not dropped when its init exited"
        time.sleep(0.05)


def test_a_listener_goes_with_its_processes(supervisor: Supervisor) -> None:
    supervisor.register()
    sup = supervisor
    handover_path = str(supervisor.directory / "handover")

    def body() -> dict[str, Any]:
        answers = []
        for _ in range(3):  # three "vzctl exec"s: each hands a listener over and exits
            pid = os.fork()
            if pid == 0:
                os._exit(0 if intercept(handover_path, ("sysinfo",)) == b"OK" else 1)
            answers.append(os.waitpid(pid, 0)[1])
        # Each listener is closed once its filter has no process left (POLLHUP).
        deadline = time.monotonic() + 30
        while sup.request({"op": "status"})["cts"] != {"1": 0} and time.monotonic() < deadline:
            time.sleep(0.05)
        listeners_left = sup.request({"op": "status"})["cts"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
            sock.connect(handover_path)
            r, _w = os.pipe()
            socket.send_fds(sock, [b"L"], [r])  # a pipe is no listener
            refused = sock.recv(256).decode()
        return {"statuses": answers, "refused": refused, "left": listeners_left}

    ct = PretendCt(supervisor, body)
    result = ct.run(supervisor)
    assert result["statuses"] == [0, 0, 0]
    assert result["refused"] == "NO not a seccomp listener"
    assert result["left"] == {"1": 0}
