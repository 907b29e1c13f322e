"""A vzctl killed at any point, or run twice at once, leaves what the next command cleans."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing import crash
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def start_points(vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> list[str]:
    """The checkpoints a normal start passes (learned, so new ones are covered too)."""
    points = crash.learn_points(vz_env, ["start", "101"], ("start:",), tmp_path / "trace")
    vzctl("stop", "--fast", 101)
    return points


def ct_processes(vz_env: VzEnv) -> set[int]:
    return crash.ct_processes(vz_env, 101)


def test_kill_at_every_point_of_start(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int,
                                      tmp_path: Path) -> None:
    points = start_points(vz_env, vzctl, tmp_path)
    assert len(points) >= 8, points
    for point in points:
        crash.kill_at(vz_env, ["start", "101"], point)
        time.sleep(0.05)  # a child released before the kill may still be exec'ing init
        status = vzctl("status", 101).stdout.split()
        running = bool(ct_processes(vz_env))
        assert (status[4] == "running") == running, f"{point}: status says {status}"
        stopped = vzctl("stop", "--fast", 101, check=False)
        assert stopped.returncode in (0, 31), f"{point}: {stopped.stderr}"  # 31: nothing ran
        assert vzctl("status", 101).stdout.strip() == "CTID 101 exist unmounted down", point
        assert not crash.leftovers(vz_env, 101), point
        assert not mounts.mounts_below(vz_env.root), point
    vzctl("start", 101)
    vzctl("stop", "--fast", 101)
    vzctl("destroy", 101)
    assert not vz_env.private(101).exists()


@pytest.mark.vm
def test_kill_mid_start_then_destroy_cleans_everything(vz_env: VzEnv, vzctl: Vzctl,
                                                       busybox_ct: int) -> None:
    crash.kill_at(vz_env, ["start", "101"], "start:released")
    assert "running" in vzctl("status", 101).stdout
    assert vzctl("destroy", 101, check=False).returncode == 32
    vzctl("stop", "--fast", 101)
    vzctl("destroy", 101)
    assert not mounts.mounts_below(vz_env.root)
    assert not vz_env.private(101).exists()


@pytest.mark.vm
def test_init_that_died_on_its_own_is_detected_and_cleaned(vz_env: VzEnv, vzctl: Vzctl,
                                                          busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    init = json.loads(vz_env.state(101).read_text())["init"]["pid"]
    os.kill(init, 9)
    # The console daemon (init's parent) cleans up as a stop would; a command in the
    # meantime waits for that (docs/system-cts.md).
    assert vzctl("exec", 101, "true", check=False).returncode == 31
    deadline = time.monotonic() + 60
    while vz_env.state(101).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert vzctl("status", 101).stdout.strip() == "CTID 101 exist unmounted down"
    vzctl("start", busybox_ct)  # cleans the dead run first
    assert "running" in vzctl("status", 101).stdout


def test_a_reused_pid_is_not_mistaken_for_the_ct(vz_env: VzEnv, vzctl: Vzctl,
                                                 busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    vzctl("stop", "--fast", "--skip-umount", busybox_ct)
    impostor = subprocess.Popen(["sleep", "30"])
    try:
        state = vz_env.state(101)
        state.write_text(json.dumps({"ctid": 101, "phase": "running",
                                     "init": {"pid": impostor.pid, "start_time": 1},
                                     "cgroups": None, "plugins": {}}))
        assert vzctl("status", 101).stdout.strip() == "CTID 101 exist mounted down"
        vzctl("stop", "--fast", busybox_ct)
        assert impostor.poll() is None, "stop must not kill a process that only shares the PID"
    finally:
        impostor.kill()
        impostor.wait()


def test_concurrent_starts_give_one_ct_and_one_refusal(vz_env: VzEnv, busybox_ct: int) -> None:
    procs = [subprocess.Popen([vzctl_binary(), "start", "101"], env=vz_env.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] in (9, 32), results
    refusal = next(err for code, err in results if code != 0)
    assert "CT 101" in refusal
    assert len(ct_processes(vz_env)) >= 1
