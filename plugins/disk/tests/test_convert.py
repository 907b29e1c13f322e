"""vzctl convert: a stopped CT's files move to another layout, verified before the old
area goes; a convert killed at any point is finished or undone by the next one."""

from __future__ import annotations

from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing import crash
from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

FILL = ("dd if=/dev/urandom of=/data bs=1M count=3 2>/dev/null; ln -s /data /link; "
        "mkdir -p /home/u; touch /home/u/f; chown -R 1000:1000 /home/u; chmod 4755 /home/u/f")
LOOK = "md5sum /data; ls -ln /link /home/u/f | cut -c1-10,15-30,55-"


def layout_of(vz_env: VzEnv, ctid: int) -> str:
    for line in vz_env.conf(ctid).read_text().splitlines():
        if line.startswith("VE_LAYOUT="):
            return line.split("=", 1)[1].strip('"')
    return "simfs"


def leftovers(vz_env: VzEnv) -> list[str]:
    siblings = [p.name for p in (vz_env.root / "vz/private").iterdir() if p.name != "101"]
    loops = [e.name for e in Path("/sys/block").glob("loop*")
             if (e / "loop/backing_file").exists()
             and (e / "loop/backing_file").read_text().startswith(str(vz_env.root))]
    return siblings + loops + mounts.mounts_below(vz_env.root)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_convert_there_and_back_keeps_every_file(vz_env: VzEnv, vzctl: Vzctl, profile: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", *profile_options(vz_env, profile))
    vzctl("start", 101)
    vzctl("exec", 101, FILL)
    before = vzctl("exec", 101, LOOK).stdout
    out = vzctl("convert", 101, "--layout", "image", "--diskspace", "64M", check=False)
    assert out.returncode == 32 and "stopped" in out.stderr  # running: refused
    vzctl("stop", "--fast", 101)
    vzctl("convert", 101, "--layout", "image", "--diskspace", "64M")
    assert layout_of(vz_env, 101) == "image" and not leftovers(vz_env)
    vzctl("start", 101)
    assert vzctl("exec", 101, LOOK).stdout == before
    assert "64.0M" in vzctl("exec", 101, "df -h /").stdout
    vzctl("stop", "--fast", 101)
    vzctl("convert", 101, "--layout", "simfs")
    assert layout_of(vz_env, 101) == "simfs" and not leftovers(vz_env)
    vzctl("start", 101)
    assert vzctl("exec", 101, LOOK).stdout == before
    vzctl("stop", "--fast", 101)


def test_convert_refuses_what_does_not_fit(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, "dd if=/dev/zero of=/big bs=1M count=20")
    vzctl("stop", "--fast", busybox_ct)
    conf = vz_env.conf(busybox_ct).read_text()
    for options, message in ((("--diskspace", "16M"), "give more"),
                             ((), "needs a size"),
                             (("--diskspace", "x"), "not a number")):
        out = vzctl("convert", busybox_ct, "--layout", "image", *options, check=False)
        assert out.returncode in (20, 21) and message in out.stderr, out.stderr
        assert vz_env.conf(busybox_ct).read_text() == conf and not leftovers(vz_env)


def test_kill_at_every_point_of_convert(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int,
                                        tmp_path: Path) -> None:
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, FILL)
    before = vzctl("exec", busybox_ct, LOOK).stdout
    vzctl("stop", "--fast", busybox_ct)
    argv = ["convert", "101", "--layout", "image", "--diskspace", "32M"]
    points = crash.learn_points(vz_env, argv, ("convert:",), tmp_path / "trace")
    assert len(points) >= 6, points
    vzctl("convert", 101, "--layout", "simfs")
    for point in points:
        crash.kill_at(vz_env, argv, point)
        again = vzctl("convert", 101, "--layout", "image", "--diskspace", "32M", check=False)
        # the next convert finishes a swapped conversion (then has nothing to do) or undoes
        # one that was not, and converts
        assert again.returncode in (0, 21), f"{point}: {again.stderr}"
        assert layout_of(vz_env, 101) == "image", point
        assert not leftovers(vz_env), f"{point}: {leftovers(vz_env)}"
        vzctl("start", 101)
        assert vzctl("exec", 101, LOOK).stdout == before, point
        vzctl("stop", "--fast", 101)
        vzctl("convert", 101, "--layout", "simfs")


@pytest.mark.parametrize("layout", ["image", "overlay"])
def test_destroy_after_a_killed_convert_leaves_nothing(vz_env: VzEnv, vzctl: Vzctl,
                                                       busybox_ct: int, tmp_path: Path,
                                                       layout: str) -> None:
    argv = ["convert", "101", "--layout", layout, "--diskspace", "32M"]
    points = crash.learn_points(vz_env, argv, ("convert:",), tmp_path / "trace")
    vzctl("destroy", 101)
    for point in points:
        vzctl("create", 101, "--ostemplate", "busybox")
        crash.kill_at(vz_env, argv, point)
        if mounts.is_mount_point(vz_env.ct_root(101)):
            vzctl("umount", 101)
        vzctl("destroy", 101)
        assert not (vz_env.root / "vz/private").exists() or \
            not list((vz_env.root / "vz/private").iterdir()), point
        assert not leftovers_outside(vz_env), point


def leftovers_outside(vz_env: VzEnv) -> list[str]:
    loops = [e.name for e in Path("/sys/block").glob("loop*")
             if (e / "loop/backing_file").exists()
             and (e / "loop/backing_file").read_text().startswith(str(vz_env.root))]
    return loops + mounts.mounts_below(vz_env.root)


# --- to and from the overlay layout ---------------------------------------------------

CHANGE = (FILL + "; rm /bin/vi /etc/shells; chmod 600 /etc/group; echo hi > /etc/motd; "
          "ln /data /data2")
OVERLOOK = (LOOK + "; ls -l /data2 | cut -c1-12; ls /bin/vi /etc/shells 2>&1 | wc -l; "
            "stat -c '%u:%g %a' /bin/busybox /etc/group /etc /home/u; cat /etc/motd")


def du_k(path: Path) -> int:
    """Host disk use below ``path`` in 1K blocks (hard links once), as ``du -skx``."""
    import subprocess

    return int(subprocess.run(["du", "-skx", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def upper_entries(vz_env: VzEnv, ctid: int) -> dict[str, str]:
    """The upper layer of a mounted overlay CT: relative path -> kind ('whiteout', ...)."""
    import os
    import stat

    top = vz_env.private(ctid) / "mnt/root"
    found = {}
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            kind = ("whiteout" if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else
                    "dir" if stat.S_ISDIR(st.st_mode) else "file")
            found[os.path.relpath(path, top)] = kind
    return found


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_convert_to_overlay_and_back(vz_env: VzEnv, vzctl: Vzctl, profile: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", *profile_options(vz_env, profile))
    vzctl("start", 101)
    vzctl("exec", 101, CHANGE)
    before = vzctl("exec", 101, OVERLOOK).stdout
    vzctl("stop", "--fast", 101)
    import os

    os.setxattr(vz_env.private(101) / "etc/motd", "user.note", b"kept")  # an xattr too
    os.setxattr(vz_env.private(101) / "etc/hostname", "user.note", b"x")  # on a template file
    simfs_k = du_k(vz_env.private(101))
    vzctl("convert", 101, "--layout", "overlay", "--diskspace", "64M")
    assert layout_of(vz_env, 101) == "overlay" and not leftovers(vz_env)
    assert "OVERLAY_LOWER=" in vz_env.conf(101).read_text()
    overlay_k = du_k(vz_env.private(101))
    # the template's files stay in the shared tree: the CT keeps its changes (3 MB of data)
    # and its image's ext4 metadata only, not its copy of the busybox binary
    tree = next((vz_env.root / "vz/template/shared").glob("busybox@*"))
    binary_k = du_k(tree / "bin/busybox")
    assert overlay_k + binary_k // 2 < simfs_k, (overlay_k, simfs_k, binary_k)
    vzctl("mount", 101)
    upper = upper_entries(vz_env, 101)
    assert upper.get("bin/vi") == "whiteout" and upper.get("etc/shells") == "whiteout", upper
    assert {"data", "data2", "etc/motd", "etc/hostname", "home/u/f", "etc/group"} <= set(upper)
    assert "bin/ls" not in upper and "bin/busybox" not in upper, upper  # unchanged: below
    assert os.getxattr(vz_env.ct_root(101) / "etc/motd", "user.note") == b"kept"
    vzctl("umount", 101)
    vzctl("start", 101)
    assert vzctl("exec", 101, OVERLOOK).stdout == before
    vzctl("stop", "--fast", 101)
    print(f"du -skx of VE_PRIVATE: simfs {simfs_k}K, overlay {overlay_k}K "
          f"(the shared tree: {du_k(tree)}K)")
    vzctl("convert", 101, "--layout", "image", "--diskspace", "64M")  # from overlay
    assert layout_of(vz_env, 101) == "image" and not leftovers(vz_env)
    assert "OVERLAY_LOWER" not in vz_env.conf(101).read_text()
    vzctl("start", 101)
    assert vzctl("exec", 101, OVERLOOK).stdout == before
    vzctl("stop", "--fast", 101)
    vzctl("mount", 101)
    assert os.getxattr(vz_env.ct_root(101) / "etc/motd", "user.note") == b"kept"
    vzctl("umount", 101)


def test_convert_from_overlay_releases_an_old_tree(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """A CT's shared tree that is no longer its template's current one goes with the CT's
    last use of it: converting away releases it as a destroy does."""
    vzctl("create", 101, "--ostemplate", "busybox", "--layout", "overlay", "--diskspace", "32M")
    tree = next((vz_env.root / "vz/template/shared").glob("busybox@*"))
    stale = tree.with_name("busybox@0-0")  # as if the template had been rebuilt since
    tree.rename(stale)
    conf = vz_env.conf(101)
    conf.write_text(conf.read_text().replace(tree.name, stale.name))
    vzctl("convert", 101, "--layout", "simfs")
    assert not stale.exists() and not leftovers(vz_env)
    vzctl("start", 101)
    assert vzctl("exec", 101, "ls /bin/busybox").returncode == 0
    vzctl("stop", "--fast", 101)


@pytest.mark.parametrize("direction", ["to", "from"])
def test_kill_at_every_point_of_an_overlay_convert(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int,
                                                   tmp_path: Path, direction: str) -> None:
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, CHANGE)
    before = vzctl("exec", busybox_ct, OVERLOOK).stdout
    vzctl("stop", "--fast", busybox_ct)
    there = ["--layout", "overlay", "--diskspace", "32M"]
    back = ["--layout", "simfs"]
    if direction == "from":
        vzctl("convert", 101, *there)
        there, back = back, there
    argv = ["convert", "101", *there]
    points = crash.learn_points(vz_env, argv, ("convert:",), tmp_path / "trace")
    assert {"convert:copied", "convert:verified", "convert:old-removed"} <= set(points), points
    vzctl("convert", 101, *back)
    wanted = there[1]
    for point in points:
        crash.kill_at(vz_env, argv, point)
        again = vzctl("convert", 101, *there, check=False)
        assert again.returncode in (0, 21), f"{point}: {again.stderr}"
        assert layout_of(vz_env, 101) == wanted, point
        assert not leftovers(vz_env), f"{point}: {leftovers(vz_env)}"
        vzctl("start", 101)
        assert vzctl("exec", 101, OVERLOOK).stdout == before, point
        vzctl("stop", "--fast", 101)
        vzctl("convert", 101, *back)


def test_a_convert_to_overlay_that_does_not_fit_is_undone(vz_env: VzEnv, vzctl: Vzctl,
                                                          busybox_ct: int) -> None:
    """The upper layer holds only the changes, so its size is not checked before: a copy
    that does not fit fails (ENOSPC) and is undone at once."""
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, "dd if=/dev/urandom of=/big bs=1M count=24 2>/dev/null")
    vzctl("stop", "--fast", busybox_ct)
    conf = vz_env.conf(busybox_ct).read_text()
    out = vzctl("convert", busybox_ct, "--layout", "overlay", "--diskspace", "16M", check=False)
    assert out.returncode == 3 and "CT 101: convert to overlay" in out.stderr, out.stderr
    assert "No space left" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert vz_env.conf(busybox_ct).read_text() == conf and not leftovers(vz_env)
    vzctl("convert", busybox_ct, "--layout", "overlay", "--diskspace", "64M")
    vzctl("start", busybox_ct)
    assert vzctl("exec", busybox_ct, "ls -l /big").stdout.split()[4] == str(24 << 20)
    vzctl("stop", "--fast", busybox_ct)
