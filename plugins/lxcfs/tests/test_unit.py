"""The lxcfs plugin without root: which CTs use the daemon (from state files), the lxcfs
program's lookup, the LXCFS key, and the vz_check hook's cheap path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from vzcore.errors import InvalidValue
from vzcore.linux.procfs import ProcessId
from vzcore_lxcfs import daemon, plugin


def write_state(run_dir: Path, ctid: int, *, init: ProcessId | None, vzctl_pid: int | None,
                lxcfs: bool = True) -> None:
    plugins: dict[str, Any] = {}
    if lxcfs:
        plugins["lxcfs"] = {"version": 1, "record": {"directory": "/d", "files": ["proc/meminfo"]}}
    data = {"format": 2, "ctid": ctid, "init": None if init is None else
            {"pid": init.pid, "start_time": init.start_time}, "plugins": plugins,
            "vzctl_pid": vzctl_pid}
    (run_dir / f"{ctid}.json").write_text(json.dumps(data))


def test_users_are_running_cts_and_starts_in_progress_that_recorded_the_plugin(tmp_path: Path) -> None:
    me = ProcessId.of(os.getpid())
    assert me is not None
    dead = ProcessId(me.pid, me.start_time + 1)          # this PID, another process: gone
    write_state(tmp_path, 101, init=me, vzctl_pid=None)
    write_state(tmp_path, 102, init=dead, vzctl_pid=None)
    write_state(tmp_path, 103, init=None, vzctl_pid=os.getpid())   # a start going on
    write_state(tmp_path, 104, init=None, vzctl_pid=2**22 + 7)      # a start whose vzctl died
    write_state(tmp_path, 105, init=me, vzctl_pid=None, lxcfs=False)
    (tmp_path / "lxcfs").mkdir()
    (tmp_path / "106.json").write_text("{not json")
    users = daemon.users(tmp_path)
    assert [u.ctid for u in users] == [101, 103]
    assert users[0].files == ("proc/meminfo",)


def test_binary_is_looked_up_in_path_or_taken_as_configured(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "lxcfs"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert daemon.binary() == str(program)
    assert daemon.binary(str(program)) == str(program)
    assert daemon.binary("/nonexistent/lxcfs") is None


def ct(config: dict[str, str], global_config: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(ctid=101, config=config, global_config=global_config or {},
                           is_host=False,
                           get=lambda k: config.get(k, (global_config or {}).get(k)))


def test_lxcfs_key_is_yes_no_or_unset_and_a_bad_value_names_the_fix() -> None:
    assert plugin._wanted(ct({})) is None
    assert plugin._wanted(ct({"LXCFS": "no"})) is False
    assert plugin._wanted(ct({}, {"LXCFS": "yes"})) is True        # vz.conf for every CT
    with pytest.raises(InvalidValue, match="--lxcfs yes\\|no --save"):
        plugin._wanted(ct({"LXCFS": "maybe"}))


def test_vz_check_leaves_a_ct_without_views_alone(tmp_path: Path) -> None:
    run = SimpleNamespace(record=None)
    paths = SimpleNamespace(run_dir=tmp_path)
    plugin.vz_check(SimpleNamespace(paths=paths, global_config={}), run)
    assert not (tmp_path / "lxcfs").exists()
