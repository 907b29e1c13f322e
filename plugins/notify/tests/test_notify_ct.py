"""statfs and sysinfo answered by the seccomp supervisor in real CTs: ``df /`` in a btrfs
CT shows its qgroup limit and use, other file systems keep the kernel's answer, busybox
``free`` shows the CT's RAM limit, and a killed supervisor is replaced without a call
failing.  One CT per profile, shared by the module's tests (on a btrfs pool the module
makes on a loop device)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vzcore.linux.procfs import ProcessId, wait_exit
from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_disk import btrfs
from vzcore_disk.testing import btrfs_pool

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def pool(vz_env_module: VzEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 400 MB btrfs on a loop device as the installation's BTRFS_POOL (skips, naming
    it, where the kernel has no btrfs simple quotas)."""
    with btrfs_pool(vz_env_module, tmp_path_factory.mktemp("pool")) as where:
        yield where


@pytest.fixture(scope="module", params=sorted(PROFILES))
def ct(request: pytest.FixtureRequest, vz_env_module: VzEnv, vzctl_module: Vzctl,
       pool: Path) -> Iterator[int]:
    """A running btrfs CT with ``--diskspace 50M:50M --ram 256M``."""
    ctid = 101 if request.param == "userns" else 102
    vzctl_module("create", ctid, "--ostemplate", "busybox", "--layout", "btrfs",
                 "--diskspace", "50M:50M", *profile_options(vz_env_module, request.param))
    vzctl_module("set", ctid, "--ram", "256M", "--save")
    vzctl_module("start", ctid)
    try:
        yield ctid
    finally:
        vzctl_module("stop", ctid, "--fast", check=False)
        vzctl_module("destroy", ctid, check=False)


def sh(vzctl: Vzctl, ctid: int, script: str) -> str:
    return vzctl("exec", ctid, script).stdout


def df_kblocks(vzctl: Vzctl, ctid: int, path: str) -> tuple[int, int]:
    """Size and use of ``path``'s file system in 1K blocks, as ``df -k`` inside shows."""
    fields = sh(vzctl, ctid, f"df -k {path}").splitlines()[-1].split()
    return int(fields[1]), int(fields[2])


def status(env: VzEnv) -> dict[str, Any]:
    """The supervisor's worker PID and each CT's listener count."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.connect(str(env.root / "run/vz/notify/notify.sock"))
        sock.send(json.dumps({"op": "status"}).encode())
        answer: dict[str, Any] = json.loads(sock.recv(65536))
    return answer


def test_df_shows_the_qgroup_limit_and_use(vzctl_module: Vzctl, pool: Path, ct: int) -> None:
    size, used = df_kblocks(vzctl_module, ct, "/")
    assert size == 50 * 1024  # not the 400 MB pool
    sh(vzctl_module, ct, "dd if=/dev/zero of=/ten bs=1M count=10 2>/dev/null; sync")
    try:
        size_after, used_after = df_kblocks(vzctl_module, ct, "/")
        qgroup_used, limit = btrfs.referenced_kblocks(pool, ct)
        assert size_after == limit == 50 * 1024
        assert used_after - used >= 9 * 1024
        assert abs(used_after - qgroup_used) <= 256  # the qgroup's own figure
    finally:
        sh(vzctl_module, ct, "rm -f /ten")
    # The pool itself is untouched by the answers: the host still sees 400 MB.
    assert os.statvfs(pool).f_blocks * os.statvfs(pool).f_frsize > 300 * MB


def test_statfs_of_other_file_systems_is_the_kernels(vzctl_module: Vzctl, ct: int) -> None:
    assert "Type: proc" in sh(vzctl_module, ct, "stat -f /proc")
    dev_size, _used = df_kblocks(vzctl_module, ct, "/dev")
    assert dev_size != 50 * 1024  # the CT's /dev tmpfs answers for itself


def test_relative_paths_and_symlinks_resolve_inside_the_ct(vzctl_module: Vzctl, ct: int) -> None:
    sh(vzctl_module, ct, "mkdir -p /var/x && ln -sfn / /var/x/up")
    assert df_kblocks(vzctl_module, ct, "/var/x/up/etc")[0] == 50 * 1024
    out = sh(vzctl_module, ct, "cd /etc && df -k . | tail -1")
    assert int(out.split()[1]) == 50 * 1024


def test_busybox_free_shows_the_ram_limit(vzctl_module: Vzctl, ct: int) -> None:
    mem = sh(vzctl_module, ct, "free -k").splitlines()[1].split()
    assert mem[0].startswith("Mem")
    assert int(mem[1]) == 256 * 1024
    assert 0 < int(mem[3]) < 256 * 1024  # free: the limit less the CT's use


def _wait_for(predicate: Callable[[], bool], what: str, bound: float = 300) -> None:
    """Poll until ``predicate`` holds; fail after ``bound`` seconds (a hang, not a timing)."""
    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {bound} s for {what}")
        time.sleep(0.05)


def test_killing_the_supervisor_loses_no_call(vz_env_module: VzEnv, vzctl_module: Vzctl,
                                              ct: int) -> None:
    """The worker is killed three times while a CT process calls statfs without pause:
    every call is answered (none fails with ENOSYS, none waits for good)."""
    log = vz_env_module.ct_root(ct) / "busy.log"
    sh(vzctl_module, ct, "(i=0; while [ $i -lt 600 ]; do df -k / | tail -1 || echo FAILED; "
                         "i=$((i+1)); done; echo done) >/busy.log 2>&1 </dev/null &")
    try:
        killed: list[int] = []
        for round_ in range(1, 4):
            wanted = 20 * round_
            _wait_for(lambda: log.read_text().count("\n") >= wanted,  # noqa: B023
                      "the loop's progress")
            _wait_for(lambda: status(vz_env_module)["worker"] not in killed,
                      "the keeper's new worker")
            worker = ProcessId.of(int(status(vz_env_module)["worker"]))
            assert worker is not None
            os.kill(worker.pid, signal.SIGKILL)
            assert wait_exit(worker, 10)
            killed.append(worker.pid)
        _wait_for(lambda: log.read_text().endswith("done\n"), "the loop's end")
        answers = log.read_text().splitlines()[:-1]
        assert len(answers) == 600
        assert all(int(line.split()[1]) == 50 * 1024 for line in answers), \
            [line for line in answers if "51200" not in line][:5]
        assert status(vz_env_module)["worker"] not in killed
        assert sh(vzctl_module, ct, "free -k").splitlines()[1].split()[1] == str(256 * 1024)
    finally:
        sh(vzctl_module, ct, "rm -f /busy.log")


def test_intercept_off_leaves_the_kernels_answers(vz_env_module: VzEnv, vzctl_module: Vzctl,
                                                  pool: Path, ct: int) -> None:
    other = ct + 10
    vzctl_module("create", other, "--ostemplate", "busybox", "--layout", "btrfs",
                 "--diskspace", "50M:50M")
    vzctl_module("set", other, "--ram", "256M", "--syscall-intercept", "off", "--save")
    vzctl_module("start", other)
    try:
        assert df_kblocks(vzctl_module, other, "/")[0] > 300 * 1024  # the pool
        assert int(sh(vzctl_module, other, "free -k").splitlines()[1].split()[1]) > 256 * 1024
        assert str(other) not in status(vz_env_module)["cts"]
    finally:
        vzctl_module("stop", other, "--fast")
        vzctl_module("destroy", other)


def test_killing_the_keeper_keeps_running_processes_answered(
        vz_env_module: VzEnv, vzctl_module: Vzctl, ct: int) -> None:
    """Last of the module (it restarts the CT): with the keeper killed, the worker goes on
    answering the CT's processes; a new ``vzctl exec`` runs without interception; the
    CT's restart brings a new keeper."""
    log = vz_env_module.ct_root(ct) / "keeper.log"
    sh(vzctl_module, ct, "(while [ ! -e /stop ]; do df -k / | tail -1; sleep 0.05; done; "
                         "echo done) >/keeper.log 2>&1 </dev/null &")
    _wait_for(lambda: log.read_text().count("\n") >= 5, "the loop's progress")
    record = (vz_env_module.root / "run/vz/notify/notify.pid").read_text().split()
    keeper = ProcessId(int(record[0]), int(record[1]))
    os.kill(keeper.pid, signal.SIGKILL)
    assert wait_exit(keeper, 10)
    mark = log.read_text().count("\n")
    _wait_for(lambda: log.read_text().count("\n") >= mark + 20, "answers after the kill")
    (vz_env_module.ct_root(ct) / "stop").touch()
    _wait_for(lambda: log.read_text().endswith("done\n"), "the loop's end")
    assert all(int(line.split()[1]) == 50 * 1024 for line in log.read_text().splitlines()[:-1])
    assert df_kblocks(vzctl_module, ct, "/")[0] > 300 * 1024  # not intercepted: the pool
    vzctl_module("restart", ct)
    assert df_kblocks(vzctl_module, ct, "/")[0] == 50 * 1024
    sh(vzctl_module, ct, "rm -f /stop /keeper.log")
