"""Management under faults: vzctl killed at every checkpoint of every verb, over and over,
on two CTs at once; a full disk during a config write."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing import crash
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

CTIDS = (105, 106)
"""Two CTs, each with a kill sequence of its own, run side by side: every kill must leave
its CT recoverable while vzctl works on the other one (the per-CT locks keep them apart)."""
PREFIXES = {"create": ("create:",), "start": ("start:",), "set": ("set:",),
            "stop": ("stop:", "teardown:"), "destroy": ("destroy:", "teardown:")}
KILLS_REQUIRED = 200


def verbs(ctid: int) -> dict[str, list[str]]:
    """The argument vectors of the verbs killed, for CT ``ctid``."""
    return {
        "create": ["create", str(ctid), "--ostemplate", "busybox"],
        "start": ["start", str(ctid)],
        "set": ["set", str(ctid), "--description", "changed", "--save"],
        "stop": ["stop", str(ctid)],
        "destroy": ["destroy", str(ctid)],
    }


class World:
    """The host as far as one CT is concerned, with the invariants every kill must keep."""

    def __init__(self, vz_env: VzEnv, vzctl: Vzctl, ctid: int) -> None:
        self.env = vz_env
        self.vzctl = vzctl
        self.ctid = ctid
        self.verbs = verbs(ctid)

    def processes(self) -> set[int]:
        return crash.ct_processes(self.env, self.ctid)

    def status(self) -> list[str]:
        result = self.vzctl("status", self.ctid, check=False)
        assert result.returncode == 0, f"status failed (lock left behind?): {result.stderr}"
        return result.stdout.split()

    def check_truthful(self, where: str) -> None:
        words = self.status()
        assert (words[4] == "running") == bool(self.processes()), f"{where}: status {words}"
        assert (words[2] == "exist") == self.env.conf(self.ctid).exists(), f"{where}: status {words}"

    def check_clean_when_down(self, where: str) -> None:
        left = crash.leftovers(self.env, self.ctid)
        assert not left, f"{where}: {left}"

    def stop(self) -> None:
        """``vzctl stop --fast``, which exits 31 when nothing was running (it still cleans)."""
        result = self.vzctl("stop", "--fast", self.ctid, check=False)
        assert result.returncode in (0, 31), result.stderr

    def bring_to(self, verb: str) -> None:
        """Put the CT in the state the verb expects, repairing what a kill left."""
        exists = self.env.conf(self.ctid).exists()
        if verb == "create":
            if exists:
                self.stop()
                self.vzctl("destroy", self.ctid)
            return
        if not exists:
            self.vzctl(*self.verbs["create"])
        running = self.status()[4] == "running"
        if verb in ("start", "destroy"):
            self.stop()  # also cleans what a killed start left
            self.check_clean_when_down(f"before {verb}")
        elif not running:
            self.stop()
            self.vzctl("start", self.ctid)

    def kill_sequence(self, points: dict[str, list[str]], kills_required: int) -> None:
        """Kill vzctl at every point of every verb, round after round, until
        ``kills_required`` kills were made; check the invariants after each."""
        kills = 0
        while kills < kills_required:
            for verb, argv in self.verbs.items():
                for point in points[verb]:
                    self.bring_to(verb)
                    crash.kill_at(self.env, argv, point)
                    kills += 1
                    self.check_truthful(f"CT {self.ctid}, killed at {point}")
        self.bring_to("create")  # stop and destroy whatever the last kill left
        self.check_clean_when_down(f"CT {self.ctid}: the end")
        assert not self.env.private(self.ctid).exists()
        assert not self.env.conf(self.ctid).exists()


def learn_points(world: World, tmp_path: Path) -> dict[str, list[str]]:
    points: dict[str, list[str]] = {}
    for verb, argv in world.verbs.items():
        world.bring_to(verb)
        points[verb] = crash.learn_points(world.env, argv, PREFIXES[verb], tmp_path / "trace")
    return points


def test_200_kills_in_a_row_leave_nothing_behind(vz_env: VzEnv, vzctl: Vzctl,
                                                 tmp_path: Path) -> None:
    worlds = [World(vz_env, vzctl, ctid) for ctid in CTIDS]
    points = learn_points(worlds[0], tmp_path)
    assert all(points.values()), points
    share = -(-KILLS_REQUIRED // len(worlds))
    with ThreadPoolExecutor(len(worlds)) as pool:  # each sequence checks itself after every kill
        list(pool.map(lambda world: world.kill_sequence(points, share), worlds))
    assert not mounts.mounts_below(vz_env.root)


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
