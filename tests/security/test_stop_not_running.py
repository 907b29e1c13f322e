"""``vzctl stop`` of a CT that is not running exits 31 (vzctl's "not running"), still
unmounting a mounted one; ``restart`` starts it (issue 19)."""

from __future__ import annotations

import pytest

from vzcore.testing.pytest_plugin import Vzctl

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def test_stopping_a_stopped_ct_exits_31(vzctl: Vzctl, busybox_ct: int) -> None:
    result = vzctl("stop", busybox_ct, check=False)
    assert result.returncode == 31, result.stderr
    assert f"CT {busybox_ct} is not running" in result.stderr
    assert vzctl("status", busybox_ct).stdout.strip() == f"CTID {busybox_ct} exist unmounted down"


def test_stopping_a_mounted_ct_unmounts_it_and_exits_31(vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("mount", busybox_ct)
    result = vzctl("stop", "--fast", busybox_ct, check=False)
    assert result.returncode == 31, result.stderr
    assert vzctl("status", busybox_ct).stdout.strip() == f"CTID {busybox_ct} exist unmounted down"


def test_stopping_twice_exits_0_then_31(vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    assert vzctl("stop", "--fast", busybox_ct, check=False).returncode == 0
    assert vzctl("stop", "--fast", busybox_ct, check=False).returncode == 31


def test_restart_starts_a_stopped_ct(vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("restart", busybox_ct)
    assert "running" in vzctl("status", busybox_ct).stdout
    vzctl("stop", "--fast", busybox_ct)
