"""Teardown follows the plugins named in the state file, not the ones active now.

A CT started with every first-party plugin (venet and veth, beancounters, cpu limits);
then the cpu plugin is disabled in vz.conf while the CT runs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.needs("busybox", "veth")]

BRIDGE = "vzt-recbr0"
LINKS = {"venet101", "veth101.0"}


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def links() -> set[str]:
    return {link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout)}


@pytest.fixture
def running_ct(vz_env: VzEnv, vzctl: Vzctl) -> Iterator[int]:
    """CT 101 running with every first-party plugin recording something."""
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("link", "set", BRIDGE, "up")
    vzctl("create", 101, "--ostemplate", "busybox", "--ipadd", "10.199.5.2",
          "--netif_add", f"eth0,,,,{BRIDGE}")
    vzctl("set", 101, "--numproc", "200:200", "--cpuunits", "2000", "--cpulimit", "50", "--save")
    vzctl("start", 101)
    assert sorted(json.loads(vz_env.state(101).read_text())["plugins"]) == \
        ["beancounters", "cpu", "devices", "lxcfs", "network"]
    try:
        yield 101
    finally:
        vz_env.write_vz_conf(DISABLED_PLUGINS="")  # so the fixture's cleanup can stop it
        _ip("link", "del", BRIDGE)


def cpu_view(vz_env: VzEnv) -> Path:
    return Path(json.loads(vz_env.state(101).read_text())["plugins"]["cpu"]["record"]["view"])


def assert_core_cleaned(vz_env: VzEnv) -> None:
    assert not vz_env.state(101).exists()
    assert not [d for d in vz_env.ct_cgroup_dirs(101) if d.exists()], "no cgroup left"
    assert not LINKS & links(), "no link left"
    assert not mounts.mounts_below(vz_env.root), "no mount left"


def test_stop_refuses_while_a_recorded_plugin_is_disabled_then_cleans_everything(
        running_ct: int, vz_env: VzEnv, vzctl: Vzctl) -> None:
    before = vz_env.state(101).read_text()
    view = cpu_view(vz_env)
    vz_env.write_vz_conf(DISABLED_PLUGINS="cpu")

    refused = vzctl("stop", 101, check=False)
    assert refused.returncode == 33, refused.stderr
    assert "the cpu plugin is disabled (DISABLED_PLUGINS in vz.conf)" in refused.stderr
    assert f'"view": "{view}"' in refused.stderr, "says what the plugin left"
    assert "remove cpu from DISABLED_PLUGINS" in refused.stderr
    assert "vzctl stop --force 101" in refused.stderr
    assert vz_env.state(101).read_text() == before, "the record is kept"
    assert "running" in vzctl("status", 101).stdout, "nothing was done"

    vz_env.write_vz_conf(DISABLED_PLUGINS="")
    vzctl("stop", 101)
    assert_core_cleaned(vz_env)
    assert not view.exists(), "the cpu plugin removed its view files"


def test_stop_force_cleans_what_the_core_can_and_names_what_it_could_not(
        running_ct: int, vz_env: VzEnv, vzctl: Vzctl) -> None:
    view = cpu_view(vz_env)
    vz_env.write_vz_conf(DISABLED_PLUGINS="cpu")

    forced = vzctl("stop", "--force", 101)
    assert "the cpu plugin is disabled" in forced.stderr
    assert "dropped (--force)" in forced.stderr
    assert f'"view": "{view}"' in forced.stderr
    assert_core_cleaned(vz_env)
    assert view.exists(), "only the cpu plugin knows its view files: they stay, and were named"


def test_a_crashed_ct_is_not_cleaned_up_without_its_recorded_plugin(
        running_ct: int, vz_env: VzEnv, vzctl: Vzctl) -> None:
    import os
    import signal

    state = json.loads(vz_env.state(101).read_text())
    os.kill(state["init"]["pid"], signal.SIGKILL)
    vz_env.write_vz_conf(DISABLED_PLUGINS="cpu")
    refused = vzctl("start", 101, check=False)
    assert refused.returncode == 33 and "the cpu plugin is disabled" in refused.stderr
    assert vz_env.state(101).exists()

    vz_env.write_vz_conf(DISABLED_PLUGINS="")
    vzctl("start", 101)  # cleans the last run with every recorded plugin, then starts
    vzctl("stop", 101)
    assert_core_cleaned(vz_env)


SAVE_COUNTER = '''
import os
from vzcore import hookimpl
from vzcore.plugin import PluginInfo
from vzcore.runtime import State

_save = State.save


def _counted(self):
    with open(os.environ["VZ_SAVE_LOG"], "a") as log:
        log.write(f"{self.phase} {sorted(self.records)}\\n")
    _save(self)


State.save = _counted


@hookimpl
def vz_plugin_info():
    return PluginInfo(subsystem="savecounter", summary="counts state file writes")
'''


def test_a_start_writes_the_state_file_once_per_recording_plugin_and_three_times_for_the_core(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> None:
    log = tmp_path / "saves"
    vz_env.add_plugin_module("save_counter", SAVE_COUNTER)
    vz_env.extra_env["VZ_SAVE_LOG"] = str(log)
    _ip("link", "add", BRIDGE, "type", "bridge")
    try:
        vzctl("create", 101, "--ostemplate", "busybox", "--ipadd", "10.199.5.2",
              "--netif_add", f"eth0,,,,{BRIDGE}")
        vzctl("set", 101, "--numproc", "200:200", "--cpulimit", "50", "--save")
        vzctl("start", 101)
        saves = log.read_text().splitlines()
        assert saves == [
            "starting []",                                    # the cgroups, before they exist
            "starting ['beancounters']",                      # one write per plugin ...
            "starting ['beancounters', 'cpu']",
            "starting ['beancounters', 'cpu', 'devices']",
            "starting ['beancounters', 'cpu', 'devices', 'network']",
            "starting ['beancounters', 'cpu', 'devices', 'lxcfs', 'network']",
            "starting ['beancounters', 'cpu', 'devices', 'lxcfs', 'network']",  # init, before it may run
            "running ['beancounters', 'cpu', 'devices', 'lxcfs', 'network']",
        ], "the previous release wrote 7 times (two for beancounters)"
        vzctl("stop", 101)
    finally:
        _ip("link", "del", BRIDGE)
