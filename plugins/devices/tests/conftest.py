"""Fixtures of the devices plugin's tests: a device probe, a loop device of the test's own,
and a running CT of each profile with the probe inside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from devices_helpers import SECRET, LoopDevice, RunningCt

from vzcore.testing.probect import PROFILES, attach_loop, build_static, start_probe_ct
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def devprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """devprobe.c, built statically so that it runs in a busybox CT."""
    return build_static(HERE / "devprobe.c", tmp_path_factory.mktemp("devprobe"))


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[LoopDevice]:
    with attach_loop(tmp_path / "disk.img", SECRET) as device:
        yield LoopDevice(device, tmp_path / "disk.img")


@pytest.fixture(params=PROFILES)
def ct(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl, devprobe: Path) -> RunningCt:
    """CT 101 running in the ``userns`` (default) or ``privileged`` (LOCAL_UID=0) profile."""
    started = start_probe_ct(vz_env, vzctl, devprobe, request.param, hostname="dev101")
    return RunningCt(started.ctid, started.profile, vzctl, vz_env, started.probe_name)
