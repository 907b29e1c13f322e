"""The devices plugin passes vzcore's generic lifecycle contract (record before make,
cleanup, cleanup after a kill, bad input refused before any effect): without root against
the recording fake, as root on the real kernel."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from vzcore.testing.fake import FakeKernel
from vzcore.testing.lifecycle import LifecycleContract


def fake_program(_kernel: FakeKernel) -> Callable[..., int]:
    """The fake's cgroup tree is plain files, where no BPF program attaches; a program
    needs no record of its own (it goes with the CT's group), so the double makes nothing."""

    def replace(_group: Any, _rules: Any, _old: int | None) -> int:
        return 1

    return replace


class TestDevicesContract(LifecycleContract):
    plugin = "vzcore_devices.plugin"
    config: ClassVar[Mapping[str, str]] = {"DEVICES": "c:10:200:rw b:7:all:r"}
    bad_input: ClassVar[Mapping[str, str]] = {"DEVNODES": "loop3", "DEVICES": "c:1:x:rw",
                                              "NETDEV": "lo"}
    kernel_doubles: ClassVar[Mapping[str, Callable[[FakeKernel], object]]] = {
        "vzcore_devices.enforce._replace_program": fake_program}
