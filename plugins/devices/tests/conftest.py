"""Fixtures of the devices plugin's tests: a device probe, a loop device of the test's own,
and a running CT of each profile with the probe inside."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from devices_helpers import SECRET, LoopDevice, RunningCt, make_ct

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

HERE = Path(__file__).resolve().parent
PROFILES = ("userns", "privileged")


@pytest.fixture(scope="session")
def devprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """devprobe.c, built statically so that it runs in a busybox CT."""
    if not shutil.which("gcc"):
        pytest.fail("the devices tests need gcc and libc6-dev (contrib/setup.sh installs them)")
    out = tmp_path_factory.mktemp("devprobe") / "devprobe"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(HERE / "devprobe.c")], check=True)
    return out


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[LoopDevice]:
    # a modular kernel (the VM's) has no loop device until the module is loaded
    subprocess.run(["modprobe", "loop"], capture_output=True, check=False)
    image = tmp_path / "disk.img"
    image.write_bytes(SECRET.ljust(1 << 20, b"\0"))
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        yield LoopDevice(device, image)
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)


@pytest.fixture(params=PROFILES)
def ct(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl, devprobe: Path) -> RunningCt:
    """CT 101 running in the ``userns`` (default) or ``privileged`` (LOCAL_UID=0) profile."""
    return make_ct(vz_env, vzctl, devprobe, request.param)
