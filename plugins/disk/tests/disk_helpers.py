"""Helpers shared by the disk plugin's layout tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vzcore.linux import mounts
from vzcore.testing import crash
from vzcore.testing.pytest_plugin import Vzctl, VzEnv


def kill_at_every_point_of_create_and_start(
        vz_env: VzEnv, vzctl: Vzctl, create: list[str], trace: Path,
        nothing_left: Callable[[str], None]) -> list[str]:
    """Kill ``vzctl create`` (``create``: its arguments, for CT 101) at each of its
    checkpoints, clean up as an admin would (``vzctl umount`` when the new area was left
    mounted, ``vzctl destroy``); then, with the CT made, kill ``vzctl start`` at each of its
    checkpoints and ``vzctl stop --fast`` (and ``umount``) after it.  After every kill and
    cleanup ``nothing_left(point)`` asserts what the layout must not leave (after a start:
    besides :func:`vzcore.testing.crash.leftovers`).  Returns the create's checkpoints; the
    CT is left made and stopped."""
    points = crash.learn_points(vz_env, create, ("create:",), trace)
    vzctl("destroy", 101)
    for point in points:
        crash.kill_at(vz_env, create, point)
        if vz_env.conf(101).exists():
            if mounts.is_mount_point(vz_env.ct_root(101)):
                vzctl("umount", 101)
            vzctl("destroy", 101)
        nothing_left(point)
    vzctl(*create)
    starts = crash.learn_points(vz_env, ["start", "101"], ("start:",), trace)
    vzctl("stop", "--fast", 101)
    for point in starts:
        crash.kill_at(vz_env, ["start", "101"], point)
        stopped = vzctl("stop", "--fast", 101, check=False)
        assert stopped.returncode in (0, 31), f"{point}: {stopped.stderr}"
        if mounts.is_mount_point(vz_env.ct_root(101)):
            vzctl("umount", 101)
        assert not crash.leftovers(vz_env, 101), point
        nothing_left(point)
    return points
