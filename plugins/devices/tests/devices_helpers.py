"""Helpers of the devices plugin's tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from vzcore.testing.probect import ProbeCt

SECRET = b"host secret"


@attrs.frozen
class LoopDevice:
    """A host loop device backed by a file that starts with :data:`SECRET`."""

    path: str
    image: Path

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def numbers(self) -> tuple[int, int]:
        rdev = os.stat(self.path).st_rdev
        return os.major(rdev), os.minor(rdev)


class RunningCt(ProbeCt):
    """A started CT of one profile, with ``devprobe`` in its /usr/local/bin."""

    def config(self) -> bytes:
        return self.env.conf(self.ctid).read_bytes()

    def plant_node(self, name: str, kind: int, numbers: tuple[int, int]) -> None:
        """A node put into the CT's /dev by the host, owned by the CT's root, mode 0666:
        only the device cgroup (v1) or program (v2) stands between it and the device."""
        path = self.host_path(f"/dev/{name}")
        os.mknod(path, kind | 0o666, os.makedev(*numbers))
        os.chmod(path, 0o666)
        private = self.env.private(self.ctid).stat()
        os.chown(path, private.st_uid, private.st_gid)
