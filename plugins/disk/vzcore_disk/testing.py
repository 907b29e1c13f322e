"""Test helpers of the disk plugin for other plugins' tests too (the notify plugin's tests
run CTs on a btrfs pool): not imported by vzcore itself."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import VzEnv
from vzcore_disk import btrfs

MB = 1024 * 1024


@contextlib.contextmanager
def btrfs_pool(env: VzEnv, workdir: Path, size: int = 400 * MB) -> Iterator[Path]:
    """A btrfs file system of ``size`` bytes on a loop device (its image in ``workdir``),
    with simple quotas on, mounted as ``env``'s ``BTRFS_POOL``; unmounted on leaving.
    Skips, naming it, where the kernel has no btrfs or no simple quotas (probed)."""
    if not shutil.which("mkfs.btrfs"):
        pytest.fail("btrfs pools need btrfs-progs (contrib/setup.sh installs it)")
    image = workdir / "pool.img"
    with open(image, "wb") as f:
        f.truncate(size)
    subprocess.run(["mkfs.btrfs", "-q", "-f", str(image)], check=True, capture_output=True)
    where = env.root / "btrfs"
    where.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount btrfs (kernel without btrfs?): {mounted.stderr.strip()}")
    try:
        try:
            btrfs.enable_simple_quota(0, where)
        except Exception as exc:
            if "simple quotas" in str(exc):
                pytest.skip("the kernel has no btrfs simple quotas (Linux 6.7+)")
            raise
        env.write_vz_conf(BTRFS_POOL="/btrfs")
        yield where
    finally:
        mounts.umount(where, detach=True)
