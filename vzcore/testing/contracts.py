"""Contract tests: what every implementation of a subsystem must do.

A plugin's test suite subclasses the contract of its subsystem; the subclass may set
``create_options`` (extra ``vzctl create`` options) and add tests of its own:

.. code-block:: python

    from vzcore.testing.contracts import IsolationContract

    class TestMyIsolation(IsolationContract):
        pass

The tests drive the real CLI with the fixtures of :mod:`vzcore.testing.pytest_plugin`
and run for both profiles (a CT in a user namespace, and a privileged one).
"""

from __future__ import annotations

import subprocess

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

PROFILES = {"userns": (), "privileged": ("--local_uid", "0", "--local_gid", "0")}
"""``vzctl create`` options of each profile; a privileged CT also needs
:meth:`VzEnv.allow_privileged <vzcore.testing.pytest_plugin.VzEnv.allow_privileged>`
(see :func:`profile_options`)."""


def profile_options(vz_env: VzEnv, profile: str) -> tuple[str, ...]:
    """The create options of ``profile``, after allowing it in ``vz_env``'s vz.conf."""
    if profile == "privileged":
        vz_env.allow_privileged()
    return PROFILES[profile]


@pytest.mark.root
@pytest.mark.needs("busybox")
class IsolationContract:
    """A CT started by the isolation provider looks like a server of its own."""

    create_options: tuple[str, ...] = ()

    @pytest.fixture(params=sorted(PROFILES))
    def running(self, request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl) -> int:
        vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "ct101",
              *profile_options(vz_env, request.param), *self.create_options)
        vzctl("start", 101)
        return 101

    @pytest.mark.vm  # both profiles under the stock kernel, cgroup v2 (docs/testing.md)
    def test_init_is_pid_1_and_only_ct_processes_are_visible(self, vzctl: Vzctl,
                                                            running: int) -> None:
        ps = vzctl("exec", running, "ps -o pid,comm").stdout.split("\n")[1:]
        processes = dict(line.split(None, 1) for line in ps if line.strip())
        assert processes["1"] == "init", "the CT's init is PID 1 of its own PID namespace"
        assert set(processes.values()) <= {"init", "sh", "ps"}, processes

    def test_own_host_name(self, vzctl: Vzctl, running: int) -> None:
        assert vzctl("exec", running, "hostname").stdout.strip() == "ct101"

    def test_no_host_mount_is_visible(self, vz_env: VzEnv, vzctl: Vzctl, running: int) -> None:
        inside = vzctl("exec", running, "cat /proc/self/mountinfo").stdout
        ct_mount_points = {line.split()[4] for line in inside.splitlines()}
        assert not any(str(vz_env.root) in p for p in ct_mount_points)
        host_only = {e.mount_point for e in mounts.mountinfo()} - {"/", "/proc", "/sys", "/dev"}
        host_only = {p for p in host_only if not p.startswith(("/proc/", "/sys/", "/dev/"))}
        assert not host_only & ct_mount_points

    def test_host_ipc_objects_are_not_visible(self, vzctl: Vzctl, running: int) -> None:
        made = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True, check=True)
        shmid = made.stdout.split()[-1]
        try:
            inside = vzctl("exec", running, "cat /proc/sysvipc/shm").stdout
            assert shmid not in inside.split()
        finally:
            subprocess.run(["ipcrm", "-m", shmid], check=True)

    def test_own_network_namespace_with_loopback(self, vzctl: Vzctl, running: int) -> None:
        links = vzctl("exec", running, "ls /sys/class/net").stdout.split()
        assert "lo" in links
        assert not {"eth0", "ens3", "enp0s1"} & set(links)

    def test_privileged_capabilities_are_dropped(self, vzctl: Vzctl, running: int) -> None:
        bounding = int(vzctl("exec", running, "grep CapBnd /proc/self/status").stdout.split()[1], 16)
        for dropped in (16, 17, 22, 25):  # sys_module, sys_rawio, sys_boot, sys_time
            assert not bounding & (1 << dropped)
