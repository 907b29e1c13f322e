"""Management under faults: vzctl killed at every checkpoint of every verb, over and over;
a full disk during a config write."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

CTID = 105
VERBS = {
    "create": ["create", str(CTID), "--ostemplate", "busybox"],
    "start": ["start", str(CTID)],
    "set": ["set", str(CTID), "--description", "changed", "--save"],
    "stop": ["stop", str(CTID)],
    "destroy": ["destroy", str(CTID)],
}
PREFIXES = {"create": ("create:",), "start": ("start:",), "set": ("set:",),
            "stop": ("stop:", "teardown:"), "destroy": ("destroy:", "teardown:")}
KILLS_REQUIRED = 200


class World:
    """The host as far as CT 105 is concerned, with the invariants every kill must keep."""

    def __init__(self, vz_env: VzEnv, vzctl: Vzctl) -> None:
        self.env = vz_env
        self.vzctl = vzctl

    def processes(self) -> set[int]:
        pids: set[int] = set()
        for directory in self.env.cgroup_dirs():
            group = directory / str(CTID)
            for procs in group.rglob("cgroup.procs") if group.exists() else []:
                pids.update(int(p) for p in procs.read_text().split())
        return pids

    def status(self) -> list[str]:
        result = self.vzctl("status", CTID, check=False)
        assert result.returncode == 0, f"status failed (lock left behind?): {result.stderr}"
        return result.stdout.split()

    def check_truthful(self, where: str) -> None:
        words = self.status()
        assert (words[4] == "running") == bool(self.processes()), f"{where}: status {words}"
        assert (words[2] == "exist") == self.env.conf(CTID).exists(), f"{where}: status {words}"

    def check_clean_when_down(self, where: str) -> None:
        assert not self.processes(), where
        assert not self.env.state(CTID).exists(), where
        assert not mounts.mounts_below(self.env.root), where
        assert not any((d / str(CTID)).exists() for d in self.env.cgroup_dirs()), where

    def bring_to(self, verb: str) -> None:
        """Put CT 105 in the state the verb expects, repairing what a kill left."""
        exists = self.env.conf(CTID).exists()
        if verb == "create":
            if exists:
                self.vzctl("stop", "--fast", CTID)
                self.vzctl("destroy", CTID)
            return
        if not exists:
            self.vzctl(*VERBS["create"])
        running = self.status()[4] == "running"
        if verb in ("start", "destroy"):
            self.vzctl("stop", "--fast", CTID)  # also cleans what a killed start left
            self.check_clean_when_down(f"before {verb}")
        elif not running:
            self.vzctl("stop", "--fast", CTID)
            self.vzctl("start", CTID)


def learn_points(world: World, tmp_path: Path) -> dict[str, list[str]]:
    trace = tmp_path / "trace"
    env = {**world.env.env, "VZ_FAULT_TRACE": str(trace)}
    points: dict[str, list[str]] = {}
    for verb, argv in VERBS.items():
        world.bring_to(verb)
        trace.write_text("")
        subprocess.run([vzctl_binary(), *argv], env=env, check=True, capture_output=True)
        points[verb] = [p for p in dict.fromkeys(trace.read_text().split())
                        if p.startswith(PREFIXES[verb])]
    return points


def test_200_kills_in_a_row_leave_nothing_behind(vz_env: VzEnv, vzctl: Vzctl,
                                                 tmp_path: Path) -> None:
    world = World(vz_env, vzctl)
    points = learn_points(world, tmp_path)
    assert all(points.values()), points
    kills = 0
    while kills < KILLS_REQUIRED:
        for verb, argv in VERBS.items():
            for point in points[verb]:
                world.bring_to(verb)
                env = {**vz_env.env, "VZ_FAULT_KILL_AT": point}
                killed = subprocess.run([vzctl_binary(), *argv], env=env, capture_output=True)
                assert killed.returncode == -9, f"{point} not reached: {killed.stderr!r}"
                kills += 1
                world.check_truthful(point)
    world.bring_to("create")  # stop and destroy whatever the last kill left
    world.check_clean_when_down("the end")
    assert not vz_env.private(CTID).exists()
    assert not vz_env.conf(CTID).exists()


def test_a_full_disk_during_a_config_write_keeps_the_old_config(vz_env: VzEnv, vzctl: Vzctl,
                                                               busybox_ct: int) -> None:
    conf_dir = vz_env.conf(101).parent
    saved = {p.name: p.read_bytes() for p in conf_dir.iterdir()}
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(conf_dir)], check=True)
    try:
        for name, data in saved.items():
            (conf_dir / name).write_bytes(data)
        before = vz_env.conf(101).read_bytes()
        try:
            with open(conf_dir / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:  # ENOSPC: the disk is full now
            pass
        result = vzctl("set", 101, "--description", "x" * 8192, "--save", check=False)
        assert result.returncode == 139, result.stderr
        assert "the old file is unchanged" in result.stderr
        assert vz_env.conf(101).read_bytes() == before
        assert sorted(p.name for p in conf_dir.iterdir()) == sorted([*saved, "filler"])
    finally:
        subprocess.run(["umount", str(conf_dir)], check=True)
