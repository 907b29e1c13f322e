"""Helpers of the devices plugin's tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import attrs

from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

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


@attrs.define
class RunningCt:
    """A started CT of one profile, with ``devprobe`` in its /usr/local/bin."""

    ctid: int
    profile: str
    vzctl: Vzctl
    env: VzEnv

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        return self.vzctl("exec2", self.ctid, command, check=False)

    def probe(self, *args: object) -> str:
        result = self.vzctl("exec3", self.ctid, "/usr/local/bin/devprobe", *args, check=False)
        assert result.returncode in (0, 1), result.stderr
        return result.stdout.strip()

    @property
    def init_pid(self) -> int:
        return int(json.loads(self.env.state(self.ctid).read_text())["init"]["pid"])

    def host_path(self, path: str) -> Path:
        """``path`` inside the running CT, as the host reaches it."""
        return Path(f"/proc/{self.init_pid}/root") / path.lstrip("/")

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


def make_ct(vz_env: VzEnv, vzctl: Vzctl, devprobe: Path, profile: str) -> RunningCt:
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "dev101",
          *profile_options(vz_env, profile))
    target = vz_env.private(101) / "usr/local/bin/devprobe"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(devprobe, target)
    owner = vz_env.private(101).stat()
    os.chown(target.parent, owner.st_uid, owner.st_gid)
    os.chown(target, owner.st_uid, owner.st_gid)
    vzctl("start", 101)
    return RunningCt(101, profile, vzctl, vz_env)
