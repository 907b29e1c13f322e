"""The acceptance measurements: busy loops in real CTs, CPU time from the CTs' counters.

These are behaviour checks with tolerances, not speed targets.  The windows are shorter
than the benchmark's (``contrib/bench/cpu_fairness.py`` uses 10 s) to keep the suite fast.
Other work may share the host's CPUs, so the tests compare CTs with each other where they
can, and give the host a small weight (``vzctl set 0 --cpuunits 8``, OpenVZ's way to favour
the CTs) where an absolute amount of CPU is measured.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vzcore.paths import Paths
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore_cpu.grammar import online_cpus
from vzcore_cpu.measure import busy_loops, cpus_used

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]
WINDOW = 2.0
"""Seconds per measurement (the benchmark's acceptance runs use 10)."""
SOON = 1.0
"""A live change must show in the window of this many seconds right after 'vzctl set'."""


def paths(vz_env: VzEnv) -> Paths:
    return Paths(Path(vz_env.root))


def test_cpuunits_share_one_cpu_1_to_3_and_follow_a_live_change(vz_env: VzEnv, vzctl: Vzctl,
                                                                busybox_ct: int) -> None:
    vzctl("create", 102, "--ostemplate", "busybox")
    vzctl("set", busybox_ct, "--cpumask", "0", "--cpuunits", "1000", "--save")
    vzctl("set", 102, "--cpumask", "0", "--cpuunits", "3000", "--save")
    vzctl("set", 0, "--cpuunits", "8")
    for ctid in (busybox_ct, 102):
        vzctl("start", ctid)
        vzctl("exec", ctid, busy_loops(1))
    used = cpus_used(paths(vz_env), (busybox_ct, 102), WINDOW)
    ratio = used[102] / used[busybox_ct]
    assert ratio == pytest.approx(3.0, rel=0.15), used

    vzctl("set", 102, "--cpuunits", "1000")
    used = cpus_used(paths(vz_env), (busybox_ct, 102), SOON)
    assert used[102] / used[busybox_ct] == pytest.approx(1.0, rel=0.15), used
    vzctl("set", busybox_ct, "--cpuunits", "4000")
    used = cpus_used(paths(vz_env), (busybox_ct, 102), SOON)
    assert used[busybox_ct] / used[102] == pytest.approx(4.0, rel=0.15), used


def test_cpulimit_caps_a_busy_loop_and_a_live_change_follows(vz_env: VzEnv, vzctl: Vzctl,
                                                             busybox_ct: int) -> None:
    vzctl("set", busybox_ct, "--cpulimit", "25", "--save")
    vzctl("set", 0, "--cpuunits", "8")
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, busy_loops(1))
    used = cpus_used(paths(vz_env), [busybox_ct], WINDOW)[busybox_ct]
    assert used * 100 == pytest.approx(25, abs=5)

    vzctl("set", busybox_ct, "--cpulimit", "60")
    used = cpus_used(paths(vz_env), [busybox_ct], SOON)[busybox_ct]
    assert used * 100 == pytest.approx(60, abs=5)


@pytest.mark.skipif(len(online_cpus()) < 2, reason="needs at least 2 online CPUs")
def test_cpulimit_150_gives_three_loops_one_and_a_half_cpus(vz_env: VzEnv, vzctl: Vzctl,
                                                            busybox_ct: int) -> None:
    vzctl("set", busybox_ct, "--cpulimit", "150", "--save")
    vzctl("set", 0, "--cpuunits", "8")
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, busy_loops(3))
    used = cpus_used(paths(vz_env), [busybox_ct], WINDOW)[busybox_ct]
    assert used == pytest.approx(1.5, rel=0.10)
