"""Fixtures of the security suite: a CT in each profile, with an attack probe inside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.testing.probect import PROFILES, attach_loop, build_static, start_probe_ct
from vzcore.testing.probect import ProbeCt as RunningCt
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

HERE = Path(__file__).resolve().parent
__all__ = ["PROFILES", "RunningCt", "descendants"]


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/security/probe.c, built statically so that it runs in any CT."""
    return build_static(HERE / "probe.c", tmp_path_factory.mktemp("probe"))


@pytest.fixture(params=PROFILES)
def ct(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl,
       probe_binary: Path) -> RunningCt:
    """CT 101 running in the ``userns`` (default) or ``privileged`` (LOCAL_UID=0) profile."""
    return start_probe_ct(vz_env, vzctl, probe_binary, request.param, hostname="sec101")


@pytest.fixture(scope="module", params=PROFILES)
def shared_ct(request: pytest.FixtureRequest, vz_env_module: VzEnv, vzctl_module: Vzctl,
              probe_binary: Path) -> Iterator[RunningCt]:
    """Like ``ct``, but one CT per module and profile, shared by the module's tests that
    use it: only for tests that leave it as they found it (attacks that must fail, reads).
    Saves the create, start, stop and destroy of a CT (4-10 s) per test and profile."""
    running = start_probe_ct(vz_env_module, vzctl_module, probe_binary, request.param,
                             hostname="sec101")
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
    import os

    with attach_loop(tmp_path / "disk.img", b"host secret") as device:
        rdev = os.stat(device).st_rdev
        yield os.major(rdev), os.minor(rdev)
