"""The btrfs layout on a loop-mounted btrfs file system the test makes: the qgroup limit,
the subvolume escape closed by simple quotas, cleanup of subvolumes and qgroups."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from disk_helpers import kill_at_every_point_of_create_and_start

from vzcore.linux import mounts
from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_disk import btrfs
from vzcore_disk.testing import btrfs_pool

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]
HERE = Path(__file__).resolve().parent
MB = 1024 * 1024


@pytest.fixture(scope="session")
def mksubvol(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mksubvol.c, built statically so that it runs in any CT."""
    if not shutil.which("gcc"):
        pytest.fail("the btrfs tests need gcc and libc6-dev (contrib/setup.sh installs them)")
    out = tmp_path_factory.mktemp("mksubvol") / "mksubvol"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(HERE / "mksubvol.c")], check=True)
    return out


@pytest.fixture
def pool(vz_env: VzEnv, tmp_path: Path) -> Iterator[Path]:
    """A 400 MB btrfs file system on a loop device, mounted as the installation's
    BTRFS_POOL (skips, naming it, where the kernel has no btrfs simple quotas)."""
    with btrfs_pool(vz_env, tmp_path) as where:
        yield where


def sh(vzctl: Vzctl, ctid: int, script: str, check: bool = True) -> str:
    return vzctl("exec", ctid, script, check=check).stdout


def qgroups(where: Path) -> list[str]:
    return sorted(p.name for p in (btrfs.sysfs_dir(where) / "qgroups").iterdir()
                  if p.name.startswith("1_"))


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_limit_holds_also_through_a_subvolume_of_the_ct(vz_env: VzEnv, vzctl: Vzctl, pool: Path,
                                                        mksubvol: Path, profile: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--layout", "btrfs",
          "--diskspace", "50M:50M", *profile_options(vz_env, profile))
    assert qgroups(pool) == ["1_101"]
    vzctl("start", 101)
    shutil.copy(mksubvol, vz_env.ct_root(101) / "bin/mksubvol")

    out = vzctl("exec", 101, "dd if=/dev/zero of=/big bs=1M count=100", check=False)
    assert out.returncode != 0 and "quota exceeded" in out.stderr + out.stdout, out.stderr
    got = int(sh(vzctl, 101, "wc -c < /big")) / MB
    assert 40 <= got <= 50, f"{got} MiB written with a 50M limit"
    sh(vzctl, 101, "rm /big; sync")

    # the CT makes a subvolume of its own and writes there: the same 1/101 holds it
    sh(vzctl, 101, "mksubvol / sub")
    out = vzctl("exec", 101, "dd if=/dev/zero of=/sub/big bs=1M count=100", check=False)
    assert out.returncode != 0, "the write escaped the CT's qgroup through a subvolume"
    got = int(sh(vzctl, 101, "wc -c < /sub/big")) / MB
    assert 40 <= got <= 50, f"{got} MiB written into a subvolume with a 50M limit"

    du = int(sh(vzctl, 101, "du -skx / /sub | awk '{s += $1} END {print s}'"))
    stat = vzctl("quota", 101).stdout.splitlines()
    used = int(stat[1].split()[1].rstrip("*"))
    assert abs(used - du) <= 0.05 * du, f"vzctl quota says {used}K, du -s {du}K"
    assert stat[1].split()[3] == "51200" and stat[2].split()[2:] == ["unlimited", "unlimited"]

    vzctl("stop", "--fast", 101)
    vzctl("destroy", 101)
    assert list(pool.iterdir()) == [] and qgroups(pool) == []


def test_growing_the_limit_is_live(vz_env: VzEnv, vzctl: Vzctl, pool: Path) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--layout", "btrfs", "--diskspace", "30M")
    vzctl("start", 101)
    vzctl("set", 101, "--diskspace", "80M", "--save")
    sh(vzctl, 101, "dd if=/dev/zero of=/big bs=1M count=60 && sync")
    assert int(sh(vzctl, 101, "wc -c < /big")) == 60 * MB
    vzctl("stop", "--fast", 101)


def test_btrfs_refusals_change_nothing(vz_env: VzEnv, vzctl: Vzctl, pool: Path) -> None:
    out = vzctl("create", 101, "--ostemplate", "busybox", "--layout", "btrfs",
                "--diskinodes", "1000", check=False)
    assert out.returncode == 21 and "no inode quota" in out.stderr, out.stderr
    vz_env.write_vz_conf(BTRFS_POOL="/vz")
    out = vzctl("create", 101, "--ostemplate", "busybox", "--layout", "btrfs", check=False)
    assert out.returncode == 21 and "not a directory on a btrfs" in out.stderr, out.stderr
    vz_env.write_vz_conf(BTRFS_POOL="/btrfs")
    subprocess.run(["btrfs", "quota", "disable", str(pool)], check=True)
    subprocess.run(["btrfs", "quota", "enable", str(pool)], check=True)  # full qgroups
    out = vzctl("create", 101, "--ostemplate", "busybox", "--layout", "btrfs", check=False)
    assert out.returncode == 21 and "escapes its limit" in out.stderr, out.stderr
    assert not vz_env.conf(101).exists() and list(pool.iterdir()) == []


def test_kill_at_every_point_of_create_and_start(vz_env: VzEnv, vzctl: Vzctl, pool: Path,
                                                 tmp_path: Path) -> None:
    create = ["create", "101", "--ostemplate", "busybox", "--layout", "btrfs",
              "--diskspace", "32M"]

    def nothing_left(point: str) -> None:
        if point.startswith("create:"):
            assert list(pool.iterdir()) == [] and qgroups(pool) == [], point
            assert mounts.mounts_below(vz_env.root) == [str(pool)], point

    kill_at_every_point_of_create_and_start(vz_env, vzctl, create, tmp_path / "trace",
                                            nothing_left)
    vzctl("destroy", 101)
    assert list(pool.iterdir()) == [] and qgroups(pool) == []
