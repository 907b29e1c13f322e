"""Every hook is called by the real CLI, in the documented order and in the right process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

TRACER_DIR = str(Path(__file__).resolve().parent.parent / "plugins")


@pytest.fixture
def trace(vz_env: VzEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Load tests/plugins/hook_tracer.py through PLUGINS in vz.conf; return its log."""
    path = tmp_path / "trace"
    vz_env.write_vz_conf(PLUGINS="hook_tracer")
    monkeypatch.setenv("PYTHONPATH", TRACER_DIR)
    monkeypatch.setenv("VZ_HOOK_TRACE", str(path))
    return path


def calls(path: Path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    registration = {"vz_parameters", "vz_list_fields", "vz_commands"}
    return [line for line in lines if line.split()[0] not in registration]


def test_lifecycle_hooks_in_order(trace: Path, vz_env: VzEnv, vzctl: Vzctl, vzlist: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--tracer-note", "hi")
    assert calls(trace) == ["vz_validate:create host", "vz_create host", "vz_quota_init host"]

    vzctl("start", 101)
    # vz_mount goes to the plugin offering the CT's layout (template's simfs) alone: the
    # tracer implements it but offers no layout; the moments around it go to every plugin
    assert calls(trace) == [
        "vz_validate:start host", "vz_pre_mount host", "vz_post_mount host",
        "vz_namespaces host", "vz_pre_start host",
        "vz_setup_host host", "vz_setup_child:recorded ct", "vz_finalize_child ct",
        "vz_post_start host",
    ]
    assert json.loads(vz_env.state(101).read_text())["plugins"]["hook_tracer"] == {
        "version": 1, "record": {"pre_start": True}}

    vzctl("exec", 101, "true")
    assert calls(trace) == ["vz_enter ct"]

    vzctl("set", 101, "--tracer-note", "live")
    assert calls(trace) == ["vz_validate:set host", "vz_apply:running host"]
    refused = vzctl("set", 101, "--tracer-note", "refuse", check=False)
    assert refused.returncode == 21
    assert "CT 101: --tracer-note refuse is refused (plugin 'hook_tracer', vz_validate)" in refused.stderr
    calls(trace)

    rows = json.loads(vzlist("-j", "-o", "ctid,tracer_note").stdout)
    assert rows == [{"ctid": 101, "tracer_note": "hi"}]
    assert calls(trace) == ["vz_collect host"]

    vzctl("stop", 101)
    stop_calls = calls(trace)
    # vz_pre_stop first (before any plugin asks the CT to shut down), then the isolation
    # plugin's vz_stop runs halt inside the CT (a joined process: vz_enter), then the
    # tracer's vz_stop (subsystem order), then teardown
    assert stop_calls[0] == "vz_pre_stop host"
    assert stop_calls.index("vz_enter ct") < stop_calls.index("vz_stop host")
    assert stop_calls[-3:] == ["vz_post_stop:recorded host", "vz_pre_umount host",
                               "vz_post_umount host"], "and no vz_umount: not its layout"

    vzctl("set", 101, "--tracer-note", "saved", "--save")
    assert calls(trace) == ["vz_validate:set host", "vz_apply:stopped host"]

    vzctl("destroy", 101)
    assert calls(trace) == ["vz_destroy host"]


def test_plugin_command_is_listed_and_runs(trace: Path, vzctl: Vzctl) -> None:
    assert "trace-hello" in vzctl("--help").stdout
    assert vzctl("trace-hello").stdout == "hello from a plugin command\n"


def test_failed_start_rolls_back_through_post_stop(trace: Path, vz_env: VzEnv, vzctl: Vzctl,
                                                   busybox_ct: int) -> None:
    (vz_env.private(101) / "sbin/init").unlink()
    calls(trace)
    failed = vzctl("start", 101, check=False)
    assert failed.returncode == 47 and "cannot run /sbin/init" in failed.stderr
    assert "vz_post_stop:recorded host" in calls(trace)
    assert vzctl("status", 101).stdout.strip() == "CTID 101 exist unmounted down"
    assert not vz_env.state(101).exists()
    assert os.listdir(vz_env.ct_root(101)) == []
