"""``is_mount_point`` asks statx about the path alone; it must agree with mountinfo."""

from __future__ import annotations

import os

from vzcore.linux import libc, mounts


def test_every_mount_point_of_mountinfo_is_one_and_their_contents_are_not() -> None:
    points = {e.mount_point for e in mounts.mountinfo()}
    for point in sorted(points)[:200]:
        if os.path.islink(point) or not os.path.isdir(point):
            continue  # a file bind-mounted, or a path gone since
        assert mounts.is_mount_point(point), point
    assert not mounts.is_mount_point("/proc/self")  # a directory below the proc mount
    assert not mounts.is_mount_point("/nonexistent/vz-path")


def test_statx_tells_where_the_kernel_can() -> None:
    # Linux 5.8 and later answer STATX_ATTR_MOUNT_ROOT; None means mountinfo is asked
    assert libc.mount_root("/") in (True, None)
    assert libc.mount_root("/proc/self/..") in (True, None)
