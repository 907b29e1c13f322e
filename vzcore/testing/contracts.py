"""Contract suites: what every implementation of a subsystem must do.

One class per subsystem, each extending the generic rules of
:class:`~vzcore.testing.lifecycle.LifecycleContract` (record before make, idempotent
cleanup, cleanup after a kill, bad input refused before any effect).  A plugin's test
module subclasses its subsystem's suite and names its hookimpl module; the subclass may
set ``config`` (what the CT's config holds for the starts), ``create_options`` (extra
``vzctl create`` options for the root part) and add tests of its own:

.. code-block:: python

    from vzcore.testing.contracts import CpuContract

    class TestMyCpuContract(CpuContract):
        plugin = "my_cpu.plugin"

Tests without a ``root`` marker run as any user against the recording fake of
:mod:`vzcore.testing.fake`; the others drive the real CLI with the fixtures of
:mod:`vzcore.testing.pytest_plugin` on the real kernel.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from vzcore.linux import mounts
from vzcore.testing.fake import SET, FakeHost
from vzcore.testing.lifecycle import ContractBroken, LifecycleContract, load_plugin, real_kernel
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


class IsolationContract(LifecycleContract):
    """A CT started by the isolation provider looks like a server of its own."""

    fake_hooks = ("vz_pre_start", "vz_post_start")  # vz_setup_host writes a uid_map: root
    bad_input = {"CAPABILITY": "no_such_capability:on"}
    NAMESPACES: ClassVar[frozenset[str]] = frozenset({"pid", "mnt", "uts", "ipc", "net"})
    """What a CT's first process must be unshared into (the kernel's names, as ``vz_namespaces``
    gives them)."""

    def test_asks_for_the_namespaces_of_a_server(self, fake: FakeHost) -> None:
        asked: set[str] = set()
        for names in fake.call("vz_namespaces", ct=fake.container()):
            asked.update(names or ())
        missing = self.NAMESPACES - asked
        assert not missing, f"vz_namespaces asks for {sorted(asked)}: a CT needs {sorted(missing)} too"

    @pytest.fixture(params=sorted(PROFILES))
    def running(self, request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl) -> int:
        load_plugin(vz_env, self.plugin)
        vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "ct101",
              *profile_options(vz_env, request.param), *self.create_options)
        vzctl("start", 101)
        return 101

    @real_kernel
    @pytest.mark.vm  # both profiles under the stock kernel, cgroup v2 (docs/testing.md)
    def test_init_is_pid_1_and_only_ct_processes_are_visible(self, vzctl: Vzctl,
                                                            running: int) -> None:
        ps = vzctl("exec", running, "ps -o pid,comm").stdout.split("\n")[1:]
        processes = dict(line.split(None, 1) for line in ps if line.strip())
        assert processes["1"] == "init", "the CT's init is PID 1 of its own PID namespace"
        assert set(processes.values()) <= {"init", "sh", "ps"}, processes

    @real_kernel
    def test_own_host_name(self, vzctl: Vzctl, running: int) -> None:
        assert vzctl("exec", running, "hostname").stdout.strip() == "ct101"

    @real_kernel
    def test_no_host_mount_is_visible(self, vz_env: VzEnv, vzctl: Vzctl, running: int) -> None:
        inside = vzctl("exec", running, "cat /proc/self/mountinfo").stdout
        ct_mount_points = {line.split()[4] for line in inside.splitlines()}
        assert not any(str(vz_env.root) in p for p in ct_mount_points)
        host_only = {e.mount_point for e in mounts.mountinfo()} - {"/", "/proc", "/sys", "/dev"}
        host_only = {p for p in host_only if not p.startswith(("/proc/", "/sys/", "/dev/"))}
        assert not host_only & ct_mount_points

    @real_kernel
    def test_host_ipc_objects_are_not_visible(self, vzctl: Vzctl, running: int) -> None:
        made = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True, check=True)
        shmid = made.stdout.split()[-1]
        try:
            inside = vzctl("exec", running, "cat /proc/sysvipc/shm").stdout
            assert shmid not in inside.split()
        finally:
            subprocess.run(["ipcrm", "-m", shmid], check=True)

    @real_kernel
    def test_own_network_namespace_with_loopback(self, vzctl: Vzctl, running: int) -> None:
        links = vzctl("exec", running, "ls /sys/class/net").stdout.split()
        assert "lo" in links
        assert not {"eth0", "ens3", "enp0s1"} & set(links)

    @real_kernel
    def test_privileged_capabilities_are_dropped(self, vzctl: Vzctl, running: int) -> None:
        bounding = int(vzctl("exec", running, "grep CapBnd /proc/self/status").stdout.split()[1], 16)
        uid_map = vzctl("exec", running, "cat /proc/self/uid_map").stdout.split()
        # sys_boot (22) in a CT's own user namespace reaches only reboot(2) of its own PID
        # namespace (the restart of the CT); a privileged CT's would be the host's.
        own_userns = uid_map[:3] != ["0", "0", "4294967295"]
        for dropped in (16, 17, 25) if own_userns else (16, 17, 22, 25):
            assert not bounding & (1 << dropped)  # sys_module, sys_rawio, sys_boot, sys_time


def cgroup_writes(fake: FakeHost) -> dict[str, str]:
    """The cgroup files the plugin wrote on the fake (path -> last value)."""
    return {e.target: e.detail for e in fake.kernel.events if e.action == SET and e.kind == "cgroup"}


class _CgroupLimits(LifecycleContract):
    """What resource plugins share: their config becomes cgroup files of the CT's own
    group, and nothing is written to another CT's group."""

    fake_hooks: ClassVar[tuple[str, ...]] = ("vz_pre_start",)
    expected_files: ClassVar[Mapping[str, str]] = {}
    """cgroup v2 file name -> the value that :attr:`config` must give it."""
    shared_files: ClassVar[frozenset[str]] = frozenset()
    """Files the plugin may write in the CTs' parent group (shared weights)."""

    def test_limits_reach_the_cts_own_groups_only(self, fake: FakeHost, ct_pid: int) -> None:
        run = fake.start(ct_pid)
        own = {str(d.directory) for d in run.state.cgroups.dirs}
        written = cgroup_writes(fake)
        for path in written:
            directory, name = os.path.split(path)
            parent_ok = name in self.shared_files and any(directory == os.path.dirname(o) for o in own)
            assert directory in own or parent_ok, f"wrote {path}, outside the CT's groups {sorted(own)}"
        for name, value in self.expected_files.items():
            found = {p: v for p, v in written.items() if os.path.basename(p) == name}
            assert found, f"{dict(self.config)} wrote no {name}; it wrote {sorted(written)}"
            assert value in {v.strip() for v in found.values()}, \
                f"{dict(self.config)} gave {name} = {found}, not {value!r}"

    @real_kernel
    @pytest.mark.cgroup2
    def test_real_limits_hold_while_running(self, vz_env: VzEnv, vzctl: Vzctl,
                                            real_ct: int) -> None:
        vzctl("start", real_ct)
        for name, value in self.expected_files.items():
            found = vz_env.cgroups(real_ct).read(name.split(".")[0], name)
            assert found == value, f"{name} of the running CT is {found!r}, not {value!r}"


class BeancountersContract(_CgroupLimits):
    """OpenVZ's beancounters as cgroup limits of the CT's own group."""

    config = {"NUMPROC": "100:100"}
    expected_files = {"pids.max": "100"}
    bad_input = {"NUMPROC": "200:100"}


class CpuContract(_CgroupLimits):
    """CPU weight, limit and affinity in the CT's group; weights balanced in the parent."""

    config = {"CPULIMIT": "50"}
    expected_files = {"cpu.max": "50000 100000"}
    shared_files = frozenset({"cpu.weight", "cpu.shares"})
    bad_input = {"CPUMASK": "4096"}


class NetworkContract(LifecycleContract):
    """The network provider: a CT's addresses on devices that vanish with it.

    Without root only ``vz_pre_start`` runs (its links are made in ``vz_setup_host``, in
    the CT's network namespace); a provider with doubles of its netlink calls lists them
    in ``kernel_doubles`` and widens ``fake_hooks``.
    """

    fake_hooks: ClassVar[tuple[str, ...]] = ("vz_pre_start",)
    config = {"IP_ADDRESS": "10.199.0.2"}
    bad_input = {"IP_ADDRESS": "10.199.0.300"}

    @real_kernel
    @pytest.mark.netns
    def test_real_address_inside_and_no_link_left_after_stop(self, vzctl: Vzctl,
                                                             real_ct: int) -> None:
        before = set(os.listdir("/sys/class/net"))
        vzctl("start", real_ct)
        inside = vzctl("exec", real_ct, "ip -o addr").stdout
        address = self.config["IP_ADDRESS"].split()[0].split("/")[0]
        assert address in inside, f"the CT does not have {address}: {inside}"
        vzctl("stop", real_ct)
        left = set(os.listdir("/sys/class/net")) - before
        if left:
            raise ContractBroken("cleanup removes what was made", f"links left after stop: {sorted(left)}")


class TemplateContract(LifecycleContract):
    """The template/layout provider: create fills the private area, mount shows it at the
    CT's root, umount and destroy may run twice."""

    template: ClassVar[str] = "busybox"
    fake_hooks: ClassVar[tuple[str, ...]] = ("vz_pre_start",)

    @pytest.fixture
    def created(self, fake: FakeHost) -> FakeHost:
        from vzcore.conffile import ConfigFile
        from vzcore.linux import safefs

        ct = fake.container()
        safefs.remove_tree(ct.private)
        conf = ConfigFile.load(ct.config.path)
        conf.update({"OSTEMPLATE": self.template})
        conf.save()
        fake.validate({}, "create")
        fake.call("vz_create", ct=fake.container())
        return fake

    def test_create_fills_the_private_area(self, created: FakeHost) -> None:
        private = created.container().private
        assert any((private / p).exists() for p in ("sbin/init", "bin/sh")), \
            f"vz_create left {private} without sbin/init or bin/sh"

    def test_mount_shows_the_area_and_umount_twice_is_harmless(self, created: FakeHost) -> None:
        ct = created.container()
        created.call("vz_mount", ct=ct)
        assert created.kernel.mounted, "vz_mount mounted nothing"
        for _ in range(2):
            created.call("vz_umount", ct=ct)
        assert not created.kernel.mounted, f"vz_umount left {created.kernel.mounted}"

    def test_destroy_twice_is_harmless(self, created: FakeHost) -> None:
        ct = created.container()
        for _ in range(2):
            created.call("vz_destroy", ct=ct)
        assert not ct.private.exists(), f"vz_destroy left {ct.private}"

    def test_declares_its_template_probe(self) -> None:
        from vzcore.testing import probes

        assert probes.declared_probe(self.template) is not None, \
            f"no entry point '{self.template}' in group {probes.FEATURE_GROUP}: declare the " \
            "probe that tells tests whether the template can be made on this host"

    @real_kernel
    def test_real_started_ct_runs_the_template(self, vzctl: Vzctl, real_ct: int) -> None:
        vzctl("start", real_ct)
        assert vzctl("exec", real_ct, "echo ok").stdout.strip() == "ok"


class SecurityContract(LifecycleContract):
    """The security provider: the CT's init and every joined process get its filter."""

    refused_syscalls: ClassVar[tuple[str, ...]] = ("add_key", "request_key", "keyctl")

    def _errno_after(self, fake: FakeHost, hook: str | None, name: str) -> int:
        """``name``'s errno (0: it worked) in a forked child after ``hook`` ran there."""
        import ctypes

        from vzcore.linux import libc, seccomp
        from vzcore.runtime import Run, State

        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the filter must not stay on the test's own process
            code = 255
            try:
                os.close(read_fd)
                if hook is not None:
                    ct = fake.container()
                    run = Run(ct, State(Path(os.devnull), ct.ctid), fake.plugins)
                    fake.plugins.run_each(hook, ct=ct, run=run)
                number = seccomp.SYSCALLS[name][os.uname().machine]
                result = libc.syscall_number(number, 0, 0, 0)
                os.write(write_fd, str(0 if result != -1 else ctypes.get_errno()).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd) as answer:
            text = answer.read()
        os.waitpid(pid, 0)
        assert text, f"{hook} failed in a forked child"
        return int(text)

    @pytest.mark.parametrize("hook", ["vz_finalize_child", "vz_enter"])
    def test_the_filter_refuses_dangerous_calls(self, fake: FakeHost, hook: str) -> None:
        for name in self.refused_syscalls:
            unfiltered = self._errno_after(fake, None, name)
            filtered = self._errno_after(fake, hook, name)
            assert filtered != 0 and filtered != unfiltered, \
                f"after {hook}, {name} gives errno {filtered} (without the filter {unfiltered})"

    @real_kernel
    def test_real_init_runs_under_a_filter(self, vzctl: Vzctl, real_ct: int) -> None:
        vzctl("start", real_ct)
        status = vzctl("exec", real_ct, "grep Seccomp: /proc/self/status").stdout.split()
        assert status[-1] == "2", f"a joined process runs without a seccomp filter: {status}"


__all__ = ["BeancountersContract", "CpuContract", "IsolationContract", "NetworkContract",
           "SecurityContract", "TemplateContract", "profile_options"]
