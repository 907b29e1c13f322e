"""The second-level quota (``--quotaugidlimit``): ordinary user and group quota inside an
image CT, set by the CT's root with the standard tools and enforced by the kernel (in the
VM: Debian's stock kernel has the quota format this machine's lacks), and refused with the
reason where it cannot hold."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.linux import loop, mounts
from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_disk import ugid

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]
IMAGE = ("--layout", "image", "--diskspace", "32M")
TOOLS = ("setquota", "repquota", "quota", "quotaoff")


def install_quota_tools(root: Path) -> str:
    """Debian's quota tools (the host's, the same release as a Debian CT's) with the
    libraries they link, copied into ``root``/opt/quota; the command prefix that runs one
    of them inside (through the copied dynamic loader: a busybox CT has no libc)."""
    programs = [shutil.which(name) for name in TOOLS]
    if not all(programs):
        pytest.fail("the second-level quota tests need Debian's quota package "
                    "(contrib/setup.sh installs it)")
    target = root / "opt/quota"
    target.mkdir(parents=True)
    loader = ""
    for program in programs:
        assert program is not None
        shutil.copy2(program, target)
        linked = subprocess.run(["ldd", program], capture_output=True, text=True, check=True)
        for line in linked.stdout.splitlines():
            path = next((word for word in line.split() if word.startswith("/")), None)
            if path:
                shutil.copy2(path, target / Path(path).name)
                if "ld-linux" in path:
                    loader = Path(path).name
    return f"/opt/quota/{loader} --library-path /opt/quota /opt/quota"


def sh(vzctl: Vzctl, ctid: int, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return vzctl("exec", ctid, script, check=check)


def a_users_one_mb_quota_holds(vzctl: Vzctl, run: str) -> None:
    """In running CT 101: user ``u`` (1000) is made, the CT's root gives it a 1 MB block
    quota with the standard tool (``run`` holds it) on its own root, and u's 2 MB write
    fails with EDQUOT having written at most 1 MB."""
    sh(vzctl, 101, "echo 'u:x:1000:1000::/home/u:/bin/sh' >> /etc/passwd && "
                   "echo 'u:x:1000:' >> /etc/group && mkdir -p /home/u && chown u:u /home/u")
    out = sh(vzctl, 101, f"{run}/setquota -u u 1024 1024 0 0 /", check=False)
    assert out.returncode == 0, out.stderr
    out = sh(vzctl, 101, "su -s /bin/sh u -c 'dd if=/dev/zero of=/home/u/big bs=1M count=2'",
             check=False)
    assert out.returncode != 0 and "Disk quota exceeded" in out.stderr + out.stdout, out
    written = int(sh(vzctl, 101, "wc -c < /home/u/big").stdout)
    assert written <= 1024 * 1024, written


@pytest.mark.vm
def test_the_cts_root_sets_user_quota_with_setquota(vz_env: VzEnv, vzctl: Vzctl) -> None:
    missing = ugid.missing_kernel_feature()
    if missing is not None:
        pytest.skip(f"this kernel lacks {missing} (the refusal is tested in "
                    "test_quotaugidlimit_is_refused_with_the_reason)")
    vzctl("create", 101, "--ostemplate", "busybox", *IMAGE, "--quotaugidlimit", "100",
          *profile_options(vz_env, "privileged"))
    vzctl("mount", 101)
    run = install_quota_tools(vz_env.ct_root(101))
    vzctl("umount", 101)
    vzctl("start", 101)
    a_users_one_mb_quota_holds(vzctl, run)
    report = sh(vzctl, 101, f"{run}/repquota -u /").stdout
    line = next((row for row in report.splitlines() if row.split()[:1] == ["u"]), None)
    assert line is not None, report
    assert line.split()[2:5] == ["1024", "1024", "1024"], report  # used, soft, hard
    # the CT's root cannot switch the quota off (the seccomp profile lets through queries
    # and limits only)
    out = sh(vzctl, 101, f"{run}/quotaoff -u /", check=False)
    assert out.returncode != 0 and "Operation not permitted" in out.stderr, out
    mine = sh(vzctl, 101, f"{run}/quota -u u", check=False).stdout  # exit 1: at the limit
    assert "1024*" in mine.split("/dev/loop")[1], mine
    # vzctl quota counts the IDs with entries (root's and u's, users and groups) against N
    stat = vzctl("quota", 101).stdout
    assert "User/group quota: on, ugids 4 limit 100" in stat, stat
    vzctl("stop", 101)
    # the limit survives stop and start (kept in the image's hidden quota files)
    vzctl("start", 101)
    report = sh(vzctl, 101, f"{run}/repquota -u /").stdout
    assert any(row.split()[:1] == ["u"] and row.split()[3] == "1024"
               for row in report.splitlines()), report
    vzctl("stop", 101)
    vzctl("destroy", 101)
    assert not mounts.mounts_below(vz_env.root)


@pytest.fixture(scope="module")
def qctl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qctl.c (one quotactl call), built statically so that it runs in a busybox CT."""
    if not shutil.which("gcc"):
        pytest.fail("the second-level quota tests need gcc and libc6-dev (contrib/setup.sh "
                    "installs them)")
    out = tmp_path_factory.mktemp("qctl") / "qctl"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(Path(__file__).with_name("qctl.c"))],
                   check=True)
    return out


@pytest.fixture
def other_quota_fs(tmp_path: Path) -> Iterator[Path]:
    """An ext4 file system of the host's with user quota on, mounted from a loop device."""
    missing = ugid.missing_kernel_feature()
    if missing is not None:
        pytest.skip(f"this kernel lacks {missing} (the refusal is tested in "
                    "test_quotaugidlimit_is_refused_with_the_reason)")
    image = tmp_path / "other.img"
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-O", "quota", "-E", "quotatype=usrquota", str(image)],
                   check=True)
    target = tmp_path / "mnt"
    target.mkdir()
    loop.ensure_module()  # (vzctl loads it at its first image mount; this comes first)
    subprocess.run(["mount", "-t", "ext4", "-o", "loop,usrquota", str(image), str(target)],
                   check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-d", str(target)], check=True)


@pytest.mark.vm
def test_a_userns_cts_root_sets_its_users_quota_through_the_supervisor(
        vz_env: VzEnv, vzctl: Vzctl, qctl: Path, other_quota_fs: Path) -> None:
    """A CT in a user namespace: its root's quotactl(2) is made by the host's seccomp
    supervisor, on its own root file system and its own (mapped) IDs only."""
    vzctl("create", 101, "--ostemplate", "busybox", *IMAGE, "--quotaugidlimit", "100")
    vzctl("mount", 101)
    root = vz_env.ct_root(101)
    run = install_quota_tools(root)
    shutil.copy(qctl, root / "opt/quota/qctl")
    # a node of another file system's device, made by the host (the CT may not mknod one)
    other = os.stat(other_quota_fs).st_dev
    os.mknod(root / "other", stat.S_IFBLK | 0o600, other)
    vzctl("umount", 101)
    vzctl("start", 101)
    a_users_one_mb_quota_holds(vzctl, run)
    # repquota lists the user by its name: the IDs come back in the CT's terms
    report = sh(vzctl, 101, f"{run}/repquota -u /").stdout
    line = next((row for row in report.splitlines() if row.split()[:1] == ["u"]), None)
    assert line is not None, report
    assert line.split()[2:5] == ["1024", "1024", "1024"], report
    host_uid = int(vz_env.conf(101).read_text().split('LOCAL_UID="')[1].split('"')[0]) + 1000
    assert str(host_uid) not in report, report
    numeric = sh(vzctl, 101, f"{run}/repquota -n -u /").stdout
    assert any(row.split()[:1] == ["#1000"] for row in numeric.splitlines()), numeric
    # on the host, the limit is the host ID's (what the kernel enforces on the image)
    assert _host_limit(qctl, vz_env.ct_root(101), host_uid) == 1024
    device = sh(vzctl, 101, "awk '$2 == \"/\" {print $1}' /proc/mounts | tail -n 1").stdout.strip()
    got = sh(vzctl, 101, f"/opt/quota/qctl get {device} 1000").stdout.split()
    assert got[:2] == ["1024", "1024"], got
    assert sh(vzctl, 101, f"/opt/quota/qctl next {device} 1000").stdout.strip() == "1000"
    # an ID outside the CT's map: EINVAL, nothing set
    out = sh(vzctl, 101, f"/opt/quota/qctl set {device} 4000000 10", check=False)
    assert out.stdout.strip() == f"errno {errno.EINVAL}", out
    # another file system (a node the host made): left to the kernel, whose lookup refuses
    # a node on the CT's nodev root (EACCES; EPERM past it), and its quota is untouched
    out = sh(vzctl, 101, "/opt/quota/qctl set /other 1000 10", check=False)
    assert out.stdout.strip() in (f"errno {errno.EACCES}", f"errno {errno.EPERM}"), out
    assert _host_limit(qctl, other_quota_fs, host_uid) == 0
    assert _host_limit(qctl, other_quota_fs, 1000) == 0
    # switching the quota off stays the kernel's (EPERM), as does a user's own query
    out = sh(vzctl, 101, f"/opt/quota/qctl off {device}", check=False)
    assert out.stdout.strip() == f"errno {errno.EPERM}", out
    out = sh(vzctl, 101, f"su -s /bin/sh u -c '/opt/quota/qctl set {device} 1000 999999'",
             check=False)
    assert out.stdout.strip() == f"errno {errno.EPERM}", out
    mine = sh(vzctl, 101, f"su -s /bin/sh u -c '/opt/quota/qctl get {device} 1000'").stdout
    assert mine.split()[:2] == ["1024", "1024"], mine
    vzctl("stop", 101)
    vzctl("destroy", 101)
    assert not mounts.mounts_below(vz_env.root)


def _host_limit(qctl: Path, path: Path, uid: int) -> int:
    """The block hard limit of host user ``uid`` on the file system at ``path``."""
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(path)], capture_output=True,
                            text=True, check=True).stdout.strip()
    out = subprocess.run([str(qctl), "get", device, str(uid)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[0])


def test_quotaugidlimit_is_refused_with_the_reason(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """A user namespace without the seccomp supervisor, a layout without per-CT user quota,
    and (on this machine) a kernel without the quota format: one line naming the CT, the
    option, the reason and the fix; nothing made."""
    vz_env.allow_privileged()
    privileged = profile_options(vz_env, "privileged")
    cases: list[tuple[tuple[str, ...], str]] = [((), "layout image")]
    missing = ugid.missing_kernel_feature()
    if missing is not None:
        reason = "QFMT_V2" if "QFMT_V2" in missing else missing
        cases += [((*IMAGE, *privileged), reason), (IMAGE, reason)]
    for options, reason in cases:
        out = vzctl("create", 101, "--ostemplate", "busybox", *options, "--quotaugidlimit", "100",
                    check=False)
        assert out.returncode == 21, (options, out.stderr)
        assert out.stderr.count("\n") == 1, out.stderr
        assert "CT 101: --quotaugidlimit 100" in out.stderr and reason in out.stderr, out.stderr
        assert not vz_env.conf(101).exists() and not vz_env.private(101).exists()
    # an existing CT: set refuses too, the config is left as it was
    # (a user namespace needs the seccomp supervisor: not with --syscall-intercept off)
    vzctl("create", 101, "--ostemplate", "busybox", *IMAGE)
    vzctl("set", 101, "--syscall-intercept", "off", "--save")
    conf = vz_env.conf(101).read_text()
    out = vzctl("set", 101, "--quotaugidlimit", "10", "--save", check=False)
    assert out.returncode == 21, out.stderr
    assert "user namespace with --syscall-intercept off" in out.stderr, out.stderr
    assert vz_env.conf(101).read_text() == conf
    # ... nor turning the supervisor off under a saved second-level quota
    vzctl("set", 101, "--syscall-intercept", "default", "--save")
    vz_env.conf(101).write_text(vz_env.conf(101).read_text() + 'QUOTAUGIDLIMIT="10"\n')
    conf = vz_env.conf(101).read_text()
    out = vzctl("set", 101, "--syscall-intercept", "off", "--save", check=False)
    assert out.returncode == 21, out.stderr
    assert "CT 101: --quotaugidlimit 10" in out.stderr and "intercept off" in out.stderr, out.stderr
    assert vz_env.conf(101).read_text() == conf
    vzctl("set", 101, "--quotaugidlimit", "0", "--save")  # off is always possible
    vzctl("destroy", 101)
