"""The grace watcher: a CT past its soft limit gets its enforcement when its grace ends,
with no vzctl run meanwhile (the test writes into the mounted CT from the host and only
watches), and gets it lifted when its use is back below."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import pytest
from test_btrfs import pool  # noqa: F401 (a fixture)

from vzcore.linux.procfs import ProcessId
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]
MB = 1024 * 1024


def grace_state(vz_env: VzEnv, ctid: int) -> dict[str, object]:
    try:
        return json.loads((vz_env.private(ctid) / "quota.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for(what: str, ready: Callable[[], bool], limit: float = 90) -> None:
    """Wait (bounded: a failure, not a slow pass, when it never comes) for ``ready``."""
    deadline = time.monotonic() + limit
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not within {limit} s"
        time.sleep(0.2)


def inside(pid: int, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` as the CT's root, in its user and mount namespaces, without vzctl."""
    return subprocess.run(["nsenter", "-t", str(pid), "-U", "-m", "-r", "-w",
                           "/bin/sh", "-c", script], capture_output=True, text=True, check=False)


def written_mb(pid: int, path: str, mb: int) -> int:
    """Write ``mb`` MiB to ``path`` inside; the MiB that got there (the file is removed)."""
    inside(pid, f"dd if=/dev/zero of={path} bs=1M count={mb} conv=fsync")
    size = inside(pid, f"wc -c < {path}; rm -f {path}").stdout.strip()
    return int(size or 0) // MB


def watcher_pid(vz_env: VzEnv) -> int | None:
    try:
        return int((vz_env.root / "run/vz/quota-watch/quota.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@pytest.mark.parametrize("layout", ["image", "btrfs"])
def test_grace_ends_without_vzctl(vz_env: VzEnv, vzctl: Vzctl, layout: str,
                                  request: pytest.FixtureRequest) -> None:
    if layout == "btrfs":
        request.getfixturevalue("pool")
    vz_env.write_vz_conf(QUOTA_CHECK_INTERVAL="1")
    vzctl("create", 101, "--ostemplate", "busybox", "--layout", layout,
          "--diskspace", "20M:40M", "--quotatime", "3")
    vzctl("start", 101)
    init = json.loads(vz_env.state(101).read_text())["init"]["pid"]
    pid = watcher_pid(vz_env)
    watcher = ProcessId.of(pid) if pid is not None else None
    assert watcher is not None
    # from here on the test runs no vzctl until the stop: the watcher alone acts
    assert inside(init, "dd if=/dev/zero of=/big bs=1M count=25 conv=fsync").returncode == 0
    wait_for("the grace starts", lambda: grace_state(vz_env, 101).get("space_since") is not None)
    wait_for("the grace ends and is enforced",
             lambda: grace_state(vz_env, 101).get("enforced") is True)
    assert written_mb(init, "/more", 10) < 2  # past grace: the soft limit holds
    inside(init, "rm /big; sync")
    wait_for("the limit is lifted", lambda: not grace_state(vz_env, 101).get("enforced"))
    assert written_mb(init, "/more", 10) == 10
    vzctl("stop", "--fast", 101)  # the last watched CT: the watcher goes with it
    assert watcher_pid(vz_env) is None and not watcher.is_alive()
    vzctl("destroy", 101)
