"""The disk plugin passes vzcore's generic lifecycle contract (bad input refused before any
effect; nothing made at start that a stop leaves).  Its layouts are proven on the real
kernel by test_image.py, test_btrfs.py and test_convert.py: mkfs, mount(8) and btrfs-progs
run as programs, which the recording fake does not see."""

from __future__ import annotations

from vzcore.testing.lifecycle import LifecycleContract


class TestDiskContract(LifecycleContract):
    plugin = "vzcore_disk.plugin"
    bad_input = {"DISKSPACE": "lots", "QUOTATIME": "-5"}
