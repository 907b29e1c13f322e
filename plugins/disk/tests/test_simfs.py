"""simfs: usage reported by vzctl quota and vzlist; limits refused with the host's reason."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.linux import loop, mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_disk import project

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def test_simfs_usage_is_du_inside(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, "dd if=/dev/urandom of=/data bs=1M count=8 2>/dev/null; "
                              "mkdir /d; cd /d; seq 1 200 | xargs touch")
    du = int(vzctl("exec", busybox_ct, "du -skx /").stdout.split()[0])
    files = int(vzctl("exec", busybox_ct, "find / -xdev | wc -l").stdout)
    stat = vzctl("quota", busybox_ct).stdout.splitlines()
    used, inodes = int(stat[1].split()[1]), int(stat[2].split()[1])
    assert abs(used - du) <= 0.05 * du, f"vzctl quota says {used}K, du -s {du}K"
    assert abs(inodes - files) <= 0.05 * files, (inodes, files)
    listed = json.loads(vzctl("-a", "-j", "-o", "ctid,diskspace", binary="vzlist").stdout)
    assert listed[0]["diskspace"] == {"usage": used, "softlimit": None, "hardlimit": None}
    vzctl("stop", "--fast", busybox_ct)


def test_simfs_limits_are_refused_with_the_reason(vz_env: VzEnv, vzctl: Vzctl,
                                                  busybox_ct: int) -> None:
    conf = vz_env.conf(busybox_ct).read_text()
    for option in ("--diskspace", "--diskinodes"):
        out = vzctl("set", busybox_ct, option, "1000", "--save", check=False)
        assert out.returncode == 21, out.stderr
        assert "project quota" in out.stderr and "--layout image" in out.stderr, out.stderr
    assert vz_env.conf(busybox_ct).read_text() == conf


@pytest.fixture
def project_quota_area(vz_env: VzEnv, tmp_path: Path) -> Iterator[Path]:
    """The installation's private areas on an ext4 with project quota (a loop-mounted image
    made here, mounted prjquota), as a host with it has them; skips, naming it, where the
    kernel cannot enforce project quota."""
    image = tmp_path / "prj.img"
    with open(image, "wb") as f:
        f.truncate(200 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "quota,project", str(image)], check=True)
    where = vz_env.root / "vz/private"
    where.mkdir(parents=True, exist_ok=True)
    loop.ensure_module()
    mounted = subprocess.run(["mount", "-o", "loop,prjquota", str(image), str(where)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"this kernel cannot mount ext4 with project quota: {mounted.stderr.strip()}")
    try:
        missing = project.missing(where)
        if missing is not None:
            pytest.skip(f"ext4 project quota is not enforced here: {missing}")
        yield where
    finally:
        mounts.umount(where, detach=True)


@pytest.mark.vm
def test_simfs_limits_by_project_quota(vz_env: VzEnv, vzctl: Vzctl,
                                       project_quota_area: Path) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--diskspace", "20M:20M",
          "--diskinodes", "3000:3000")
    private = vz_env.private(101)
    projid = project.project_id(101)
    assert project.assigned(private, projid)
    vzctl("start", 101)
    out = vzctl("exec", 101, "dd if=/dev/zero of=/big bs=1M count=40", check=False)
    assert out.returncode != 0 and "Disk quota exceeded" in out.stderr + out.stdout, out
    written = int(vzctl("exec", 101, "wc -c < /big").stdout) / 1024 / 1024
    assert 15 <= written <= 20, written
    size = int(vzctl("exec", 101, "df -k /").stdout.splitlines()[1].split()[1])
    assert size == 20 * 1024, f"df inside shows {size}K for a 20M project limit"
    vzctl("exec", 101, "rm /big")  # a full project has no block for the directory
    count = int(vzctl("exec", 101, "mkdir /d && cd /d && seq 1 5000 | xargs touch 2>/dev/null; "
                                   "ls | wc -l").stdout)
    assert 2000 < count < 3000, f"{count} files with 3000 inodes"
    vzctl("exec", 101, "rm -rf /d")
    stat = vzctl("quota", 101).stdout.splitlines()
    du = int(vzctl("exec", 101, "du -skx /").stdout.split()[0])
    assert abs(int(stat[1].split()[1].rstrip("*")) - du) <= 0.05 * du, (stat, du)
    # a live change: the project's limit grows at once
    vzctl("set", 101, "--diskspace", "60M:60M", "--save")
    assert vzctl("exec", 101, "dd if=/dev/zero of=/big bs=1M count=40 && echo ok").stdout \
        .endswith("ok\n")
    vzctl("stop", 101)
    vzctl("destroy", 101)
    assert project.usage(project_quota_area, projid)[1] == 0  # the limit is lifted


HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def setproj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """setproj.c (tries FS_IOC_FSSETXATTR and FS_IOC_SETFLAGS on a directory), static."""
    import shutil

    if not shutil.which("gcc"):
        pytest.fail("this test needs gcc and libc6-dev (contrib/setup.sh installs them)")
    out = tmp_path_factory.mktemp("setproj") / "setproj"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(HERE / "setproj.c")], check=True)
    return out


def try_to_leave(vz_env: VzEnv, vzctl: Vzctl, ctid: int, setproj: Path) -> dict[str, str]:
    """Run setproj on a new directory /escape inside: attempt -> result."""
    import shutil

    shutil.copy(setproj, vz_env.ct_root(ctid) / "setproj")
    out = vzctl("exec", ctid, "mkdir -p /escape && /setproj /escape").stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_a_privileged_simfs_ct_with_limits_cannot_change_project_ids(
        vz_env: VzEnv, vzctl: Vzctl, setproj: Path) -> None:
    """The privileged profile's filter refuses the ioctls that change a project ID or the
    inherit flag when the CT has limits (here vz.conf's, which this host cannot enforce:
    the filter is the same); without limits they are the file system's to answer."""
    vz_env.allow_privileged()
    vz_env.write_vz_conf(DISKSPACE="20M:20M")
    vzctl("create", 101, "--ostemplate", "busybox", "--local_uid", "0", "--local_gid", "0")
    vzctl("start", 101)
    assert try_to_leave(vz_env, vzctl, 101, setproj) == \
        {"fssetxattr": "Operation not permitted", "setflags": "Operation not permitted"}
    vzctl("stop", "--fast", 101)
    vzctl("destroy", 101)
    vz_env.write_vz_conf(DISKSPACE="")
    vzctl("create", 101, "--ostemplate", "busybox", "--local_uid", "0", "--local_gid", "0")
    vzctl("start", 101)
    assert try_to_leave(vz_env, vzctl, 101, setproj)["setflags"] == "ok"
    vzctl("stop", "--fast", 101)


@pytest.mark.vm
@pytest.mark.parametrize("profile", ["privileged", "userns"])
def test_a_simfs_ct_cannot_leave_its_project(vz_env: VzEnv, vzctl: Vzctl, setproj: Path,
                                             project_quota_area: Path, profile: str) -> None:
    """Neither profile's root can take a directory out of the CT's project (privileged:
    the seccomp filter, EPERM; in a user namespace: the kernel, EINVAL), so a write there
    still stops at the limit.  (A privileged CT's root must lose CAP_SYS_RESOURCE for any
    quota to bind it: Linux's quotas let that capability past their limits.)"""
    from vzcore.testing.contracts import profile_options

    vzctl("create", 101, "--ostemplate", "busybox", "--diskspace", "20M:20M",
          *profile_options(vz_env, profile))
    if profile == "privileged":
        vzctl("set", 101, "--capability", "sys_resource:off", "--save")
    vzctl("start", 101)
    tried = try_to_leave(vz_env, vzctl, 101, setproj)
    assert "ok" not in tried.values(), tried
    assert project.assigned(vz_env.private(101) / "escape", project.project_id(101))
    out = vzctl("exec", 101, "dd if=/dev/zero of=/escape/big bs=1M count=40", check=False)
    assert out.returncode != 0 and "Disk quota exceeded" in out.stderr + out.stdout, out
    vzctl("stop", "--fast", 101)
    vzctl("destroy", 101)
