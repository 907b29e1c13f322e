"""The lxcfs plugin passes vzcore's generic lifecycle contract: the part against the
recording fake needs no root (the daemon's process and mount go to the fake through a
double of :class:`vzcore_lxcfs.daemon.Launcher`); the rest starts real CTs as root."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from vzcore.linux.procfs import ProcessId
from vzcore.testing.fake import FakeKernel
from vzcore.testing.lifecycle import LifecycleContract


def fake_launcher(kernel: FakeKernel) -> type:
    """The daemon's start, stop and mount going to the fake: the "daemon" is this test
    process (never signalled: ``end`` only removes the fake mount)."""
    from vzcore_lxcfs.daemon import Launcher, Place

    class FakeLauncher(Launcher):
        def serving(self, where: Place) -> bool:
            return kernel.exists("lxcfs", str(where.mountpoint))

        def spawn(self, where: Place, program: str) -> ProcessId:
            me = ProcessId.of(os.getpid())
            assert me is not None
            where.daemon_file.write_text(f"{me.pid} {me.start_time}\n")
            kernel.make("lxcfs", str(where.mountpoint))
            return me

        def end(self, process: ProcessId) -> None:
            pass

        def unmount(self, mountpoint: Path) -> None:
            kernel.remove("lxcfs", str(mountpoint))

    return FakeLauncher


class TestLxcfsContract(LifecycleContract):
    plugin = "vzcore_lxcfs.plugin"
    config = {"LXCFS": "yes"}
    bad_input = {"LXCFS": "maybe"}
    kernel_doubles: ClassVar[Mapping[str, Callable[[FakeKernel], object]]] = {
        "vzcore_lxcfs.daemon.Launcher": fake_launcher,
        # the fake forks no process that could hold a time namespace
        "vzcore_lxcfs.timens.available": lambda kernel: lambda: False}
