"""Bad input is refused with vzctl's exit code and a one-line message, and changes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` with a digest of its content (symlinks by target)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path)] = "-> " + str(path.readlink())
        elif path.is_file():
            found[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
        else:
            found[str(path)] = "dir"
    return found


def refused(vzctl: Vzctl, code: int, *args: object) -> str:
    result = vzctl(*args, check=False)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"one line, not: {result.stderr}"
    return lines[0]


@pytest.mark.parametrize(("args", "code", "words"), [
    (("start", "555"), 14, ["CT 555", "does not exist", "vzctl create"]),
    (("set", "555", "--hostname", "x", "--save"), 14, ["CT 555"]),
    (("start", "10x"), 20, ["10x", "CT ID"]),
    (("create", "abc", "--ostemplate", "busybox"), 20, ["abc"]),
    (("set", "101", "--no-such-option", "1"), 20, ["--no-such-option", "--help"]),
    (("set", "101", "--hostname", "bad name"), 21, ["CT 101", "--hostname"]),
    (("set", "101", "--stop-timeout", "-5"), 21, ["CT 101", "--stop-timeout"]),
    (("set", "101", "--onboot", "perhaps", "--save"), 21, ["CT 101", "--onboot", "yes or no"]),
    (("create", "101", "--ostemplate", "busybox"), 44, ["CT 101", "already exists"]),
    (("create", "102", "--ostemplate", "no-such-template"), 91, ["no-such-template", "not found"]),
    (("create", "102", "--ostemplate", "busybox", "--layout", "ploop"), 50, ["CT 102", "ploop"]),
    (("create", "100", "--ostemplate", "busybox"), 21, ["reserved"]),
    (("create", "102", "--config", "nonexistent"), 82, ["nonexistent"]),
    (("exec", "101", "true"), 31, ["CT 101", "not running"]),
])
def test_bad_input_is_refused_and_changes_nothing(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int,
                                                  args: tuple[str, ...], code: int,
                                                  words: list[str]) -> None:
    before = snapshot(vz_env.root)
    message = refused(vzctl, code, *args)
    for word in words:
        assert word in message
    assert snapshot(vz_env.root) == before


def test_starting_a_running_ct_is_refused(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    state = vz_env.state(101).read_text()
    assert "already running" in refused(vzctl, 32, "start", busybox_ct)
    assert vz_env.state(101).read_text() == state
    assert "stop it first" in refused(vzctl, 32, "destroy", busybox_ct)
    assert vz_env.conf(101).exists() and vz_env.private(101).exists()


def test_disabled_ct_does_not_start_without_force(vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("set", busybox_ct, "--disabled", "yes", "--save")
    assert "--force" in refused(vzctl, 105, "start", busybox_ct)
    vzctl("start", "--force", busybox_ct)


def test_disabled_isolation_plugin_is_shown_and_named(vz_env: VzEnv, vzctl: Vzctl,
                                                      busybox_ct: int) -> None:
    vz_env.write_vz_conf(DISABLED_PLUGINS="isolation")
    listing = vzctl("plugins").stdout
    row = next(line for line in listing.splitlines() if line.startswith("isolation"))
    assert "disabled" in row
    message = refused(vzctl, 5, "start", busybox_ct)
    assert "'isolation' subsystem" in message
    assert vzctl("status", busybox_ct).stdout.strip() == "CTID 101 exist unmounted down"


def test_two_plugins_for_one_subsystem_are_named(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int,
                                                 tmp_path: Path) -> None:
    (tmp_path / "second_isolation.py").write_text(
        "from vzcore import hookimpl\nfrom vzcore.plugin import PluginInfo\n\n\n"
        "@hookimpl\ndef vz_plugin_info():\n"
        "    return PluginInfo(subsystem='isolation', summary='a second one')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    vz_env.write_vz_conf(PLUGINS="second_isolation")
    import os
    import subprocess

    from vzcore.testing.pytest_plugin import vzctl_binary

    result = subprocess.run([vzctl_binary(), "start", "101"], env={**vz_env.env, **env},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 85
    assert "'isolation', 'second_isolation'" in result.stderr
    assert "ISOLATION_PROVIDER" in result.stderr
    vz_env.write_vz_conf(ISOLATION_PROVIDER="isolation")
    result = subprocess.run([vzctl_binary(), "plugins"], env={**os.environ, **vz_env.env, **env},
                            capture_output=True, text=True, check=True)
    assert "not selected" in result.stdout
