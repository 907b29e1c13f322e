"""The overlay layout on the real kernel: one shared template tree below every CT, each
CT's changes in an image above it, idmapped for unprivileged CTs (issue 15's acceptance)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_image import df_k, loops_of, sh, written_mb

from vzcore.linux import mounts
from vzcore.testing import crash
from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

OVERLAY = ("--ostemplate", "busybox", "--layout", "overlay", "--diskspace", "48M")


def loops_left(vz_env: VzEnv, *, within: Path | None = None) -> list[str]:
    """The test's loop devices (below ``within`` if given) that stay after a short grace.

    A loop device is freed when its file system's last mount goes, and a mount namespace
    that another program on the host copies meanwhile (``unshare -m`` takes a copy of every
    mount, this CT's too) holds one until that program exits: seconds on a busy host.  So
    wait (bounded) for such copies to go before calling a device left behind."""
    import time

    deadline = time.monotonic() + 30
    while True:
        left = [d for d in loops_of(vz_env) if within is None or f"{within}/" in d]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def trees(vz_env: VzEnv) -> list[Path]:
    """The shared trees the test's installation has."""
    return sorted((vz_env.root / "vz/template/shared").glob("*@*"))


def local_uid(vz_env: VzEnv, ctid: int) -> int:
    for line in vz_env.conf(ctid).read_text().splitlines():
        if line.startswith("LOCAL_UID="):
            return int(line.partition("=")[2].strip('"'))
    raise AssertionError("no LOCAL_UID")


def upper(vz_env: VzEnv, ctid: int) -> Path:
    """The CT's changes on the host (while it is mounted)."""
    return vz_env.private(ctid) / "mnt/root"


def du_k(path: Path) -> int:
    """Host disk use below ``path`` in 1K blocks, hard links once, as ``du -sx``."""
    seen, total = set(), 0
    for top, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(top, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks // 2
    return total


def drop_cache(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (those no process maps)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages (a fresh unpack) are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def resident(path: Path) -> int:
    """Bytes of ``path`` in the page cache (``fincore``)."""
    import subprocess

    out = subprocess.run(["fincore", "-b", "-n", "-o", "RES", path], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[0])


def file_pages(vz_env: VzEnv, ctid: int) -> int:
    """Bytes of page cache charged to the CT's memory cgroup, tmpfs excepted."""
    for group in vz_env.ct_cgroup_dirs(ctid):
        if (group / "memory.stat").exists():
            stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
            cached = stat["file"] if "file" in stat else stat["cache"]  # cgroup v2 : v1
            return int(cached) - int(stat["shmem"])
    raise AssertionError(f"CT {ctid} has no memory cgroup")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_overlay_shares_the_template_tree(vz_env: VzEnv, vzctl: Vzctl, profile: str) -> None:
    ctids = (101, 102, 103) if profile == "userns" else (101,)
    options = profile_options(vz_env, profile)
    for ctid in ctids:
        vzctl("create", ctid, *OVERLAY, *options)
    [tree] = trees(vz_env)  # unpacked once, unshifted
    assert os.stat(tree / "bin/busybox").st_uid == 0
    tree_k = du_k(tree)
    binary = (tree / "bin/busybox").stat().st_size
    drop_cache(tree / "bin/busybox")
    assert resident(tree / "bin/busybox") < 0.1 * binary
    for ctid in ctids:
        vzctl("start", ctid)
        sh(vzctl, ctid, "cat /bin/busybox > /dev/null")
        # each CT sees the shared files owned by its own root
        assert sh(vzctl, ctid, "stat -c %u:%g /bin/busybox") == "0:0\n"
        sh(vzctl, ctid, "echo changed >> /etc/passwd; mkdir /home/u; touch /new")
        owner = local_uid(vz_env, ctid)
        # its changes are stored shifted in its upper layer, owned by its root on the host
        assert os.stat(upper(vz_env, ctid) / "new").st_uid == owner
        assert os.stat(upper(vz_env, ctid) / "etc/passwd").st_uid == owner
        assert "changed" not in (tree / "etc/passwd").read_text()  # the shared tree is untouched
        # the private area holds only the changes: no copy of the template's files
        assert not (upper(vz_env, ctid) / "bin/busybox").exists()
        assert du_k(upper(vz_env, ctid)) < 200 < tree_k, (du_k(upper(vz_env, ctid)), tree_k)
        # df / shows the upper layer's size
        size, _used = df_k(vzctl, ctid)
        assert 44 * 1024 < size <= 48 * 1024, f"df shows {size}K for 48M"
    # the binary is in the page cache once: charged to the first CT that read it, the
    # others found its pages there (memory.stat's file pages, less tmpfs's shmem)
    charged = [file_pages(vz_env, ctid) for ctid in ctids]
    assert charged[0] > 0.8 * binary, (charged, binary)
    assert all(c < 0.25 * binary for c in charged[1:]), (charged, binary)
    assert binary <= resident(tree / "bin/busybox") < binary + 4096  # the shared file, once
    # diskspace holds on the upper layer
    assert 40 <= written_mb(vzctl, ctids[0], "/big", 80) <= 48
    sh(vzctl, ctids[0], "rm /big")
    # changes survive stop and start; nothing is left mounted in between
    vzctl("stop", ctids[0])
    assert not mounts.mounts_below(vz_env.private(ctids[0]))
    assert not loops_left(vz_env, within=vz_env.private(ctids[0]))
    vzctl("start", ctids[0])
    assert sh(vzctl, ctids[0], "tail -n 1 /etc/passwd; ls -d /new") == "changed\n/new\n"
    for ctid in ctids:
        vzctl("stop", ctid)
        vzctl("destroy", ctid)
    assert not loops_left(vz_env)
    assert not mounts.mounts_below(vz_env.root)
    assert trees(vz_env) == [tree]  # the current template's tree stays for the next create


def test_kill_at_every_point_of_create_and_start(vz_env: VzEnv, vzctl: Vzctl,
                                                 tmp_path: Path) -> None:
    """A vzctl killed at any checkpoint leaves nothing umount/stop/destroy cannot clean:
    no mount (upper image, idmapped lower, overlay), loop device or idmap helper."""
    create = ["create", "101", *OVERLAY]
    points = crash.learn_points(vz_env, create, ("create:",), tmp_path / "trace")
    assert "create:tree-unpacked" in points, points
    vzctl("destroy", 101)
    for tree in trees(vz_env):  # so that the kills meet the unpack too
        import shutil

        shutil.rmtree(tree)
    for point in points:
        crash.kill_at(vz_env, create, point)
        if vz_env.conf(101).exists():
            vzctl("destroy", 101)
        assert not loops_left(vz_env), point
        assert not mounts.mounts_below(vz_env.root), point
        assert not vz_env.private(101).exists(), point
        assert not helpers(vz_env), point

    vzctl(*create)
    argv = ["start", "101"]
    starts = crash.learn_points(vz_env, argv, ("start:", "mount:"), tmp_path / "trace")
    assert "mount:overlay-lower-idmapped" in starts, starts
    vzctl("stop", "--fast", 101)
    for point in starts:
        crash.kill_at(vz_env, argv, point)
        stopped = vzctl("stop", "--fast", 101, check=False)
        assert stopped.returncode in (0, 31), f"{point}: {stopped.stderr}"
        if mounts.is_mount_point(vz_env.ct_root(101)):
            vzctl("umount", 101)
        assert not crash.leftovers(vz_env, 101), point
        assert not loops_left(vz_env), point
        assert not helpers(vz_env), point
    # a mount killed half-way (the upper image mounted, the idmapped lower attached) is
    # cleaned by the next mount
    for point in ("mount:overlay-upper-mounted", "mount:overlay-lower-idmapped"):
        crash.kill_at(vz_env, ["mount", "101"], point)
        vzctl("mount", 101)
        vzctl("umount", 101)
        assert not mounts.mounts_below(vz_env.root) and not loops_left(vz_env), point
    crash.kill_at(vz_env, ["mount", "101"], "mount:overlay-lower-idmapped")
    vzctl("destroy", 101)  # destroy cleans it too
    assert not mounts.mounts_below(vz_env.root) and not loops_left(vz_env)


def helpers(vz_env: VzEnv) -> list[int]:
    """Processes of a vzctl of this test's installation still alive (an idmap helper left
    by a killed vzctl would be one: it is a fork of vzctl, with vzctl's command line).
    The installation's daemons (console, lxcfs, beancounters view) are not counted: they
    end on their own once idle (the console daemon waits out its start-up grace)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"VZ_ROOT={vz_env.root}".encode() not in environ:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"/vzctl") for arg in argv[:2]):
            found.append(int(entry.name))
    return found


def test_bad_input_and_convert_change_nothing(vz_env: VzEnv, vzctl: Vzctl) -> None:
    refused = vzctl("create", 101, "--ostemplate", "busybox", "--layout", "overlay", check=False)
    assert refused.returncode != 0 and "--diskspace" in refused.stderr, refused.stderr
    assert not vz_env.conf(101).exists() and not vz_env.private(101).exists()
    assert not trees(vz_env)
    vzctl("create", 101, *OVERLAY)
    before = vz_env.conf(101).read_text()
    # a convert refused for bad input changes nothing (converts: test_convert.py)
    out = vzctl("convert", 101, "--layout", "image", "--diskspace", "8M", check=False)
    assert out.returncode == 21 and "smallest image" in out.stderr, out.stderr
    assert vz_env.conf(101).read_text() == before
    vzctl("create", 102, "--ostemplate", "busybox", "--layout", "image", "--diskspace", "32M")
    conf = vz_env.conf(102)
    conf.write_text(conf.read_text().replace('OSTEMPLATE="busybox"', 'OSTEMPLATE="nosuch"'))
    out = vzctl("convert", 102, "--layout", "overlay", check=False)
    assert out.returncode != 0 and "nosuch" in out.stderr, out.stderr
    assert "VE_LAYOUT=\"image\"" in conf.read_text()
    assert not (vz_env.root / "vz/private/102.convert").exists()
    # vzctl quota and vzlist report the upper layer
    assert vzctl("quota", 101).stdout.splitlines()[1].split()[3] == "49152"
    vzctl("destroy", 101)
    vzctl("destroy", 102)


def test_template_trees_live_as_long_as_their_cts(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """A tarball template: remove refuses while an overlay CT shares its tree, naming the
    CT; a rebuilt template gets a new tree and the old one goes with its last CT."""
    import subprocess

    vzctl("create", 101, "--ostemplate", "busybox")  # a tree to pack as a tarball
    cache = vz_env.root / "vz/template/cache"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / "bbtar.tar"
    subprocess.run(["tar", "-C", vz_env.private(101), "--numeric-owner", "-cf", tarball, "."],
                   check=True)
    vzctl("destroy", 101)
    vzctl("create", 101, "--ostemplate", "bbtar", "--layout", "overlay", "--diskspace", "32M")
    [old] = trees(vz_env)
    refused = vzctl("template", "remove", "bbtar", check=False)
    assert refused.returncode != 0 and "in use" in refused.stderr and "101" in refused.stderr
    assert tarball.exists() and old.is_dir()
    os.utime(tarball, (1, 1))  # as a rebuild does: a new version of the template
    vzctl("create", 102, "--ostemplate", "bbtar", "--layout", "overlay", "--diskspace", "32M")
    assert len(trees(vz_env)) == 2
    vzctl("destroy", 101)  # the old version's last CT: its tree goes
    [new] = trees(vz_env)
    assert new != old
    vzctl("destroy", 102)  # the current version's tree stays (the unpacked cache)
    assert trees(vz_env) == [new]
    vzctl("template", "remove", "bbtar")
    assert not trees(vz_env) and not tarball.exists()
