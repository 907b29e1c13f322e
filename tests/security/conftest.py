"""Fixtures of the security suite: a CT in each profile, with an attack probe inside."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

HERE = Path(__file__).resolve().parent
PROFILES = ("userns", "privileged")


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/security/probe.c, built statically so that it runs in any CT."""
    if not shutil.which("gcc"):
        pytest.fail("the security suite needs gcc and libc6-dev (contrib/setup.sh installs them)")
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(HERE / "probe.c")], check=True)
    return out


@attrs.define
class RunningCt:
    """A started CT of one profile, with ``probe`` in its /usr/local/bin."""

    ctid: int
    profile: str
    vzctl: Vzctl
    env: VzEnv

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        return self.vzctl("exec2", self.ctid, command, check=False)

    def probe(self, *args: object) -> str:
        """Run the probe inside; its verdict: ``ok`` or an errno name (``EPERM``)."""
        result = self.vzctl("exec3", self.ctid, "/usr/local/bin/probe", *args, check=False)
        assert result.returncode in (0, 1), result.stderr
        return result.stdout.strip()


def start_probe_ct(env: VzEnv, vzctl: Vzctl, probe_binary: Path, profile: str) -> RunningCt:
    """Create and start CT 101 of ``profile`` in ``env``, with the probe inside."""
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "sec101",
          *profile_options(env, profile))
    target = env.private(101) / "usr/local/bin/probe"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(probe_binary, target)
    owner = env.private(101).stat()
    os.chown(target.parent, owner.st_uid, owner.st_gid)
    os.chown(target, owner.st_uid, owner.st_gid)
    vzctl("start", 101)
    return RunningCt(101, profile, vzctl, env)


@pytest.fixture(params=PROFILES)
def ct(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl,
       probe_binary: Path) -> Iterator[RunningCt]:
    """CT 101 running in the ``userns`` (default) or ``privileged`` (LOCAL_UID=0) profile,
    the test's own: for tests that change the CT (restart it, change its files)."""
    yield start_probe_ct(vz_env, vzctl, probe_binary, request.param)


@pytest.fixture(scope="module", params=PROFILES)
def shared_ct(request: pytest.FixtureRequest, vz_env_module: VzEnv, vzctl_module: Vzctl,
              probe_binary: Path) -> Iterator[RunningCt]:
    """Like ``ct``, but one CT per module and profile, shared by the module's tests that
    use it: only for tests that leave it as they found it (attacks that must fail, reads).
    Saves the create, start, stop and destroy of a CT (4-10 s) per test and profile."""
    running = start_probe_ct(vz_env_module, vzctl_module, probe_binary, request.param)
    yield running
    # The other profile's CT is CT 101 of the same installation.
    vzctl_module("stop", "--fast", 101)
    vzctl_module("destroy", 101)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (host PIDs)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


@pytest.fixture
def host_block_device(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A loop device of the host's (major, minor), backed by a file of the test's."""
    image = tmp_path / "disk.img"
    image.write_bytes(b"host secret".ljust(1 << 20, b"\0"))
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        rdev = os.stat(device).st_rdev
        yield os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
