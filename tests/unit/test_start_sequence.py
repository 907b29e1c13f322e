"""The start sequence is one function: start.py calls every hook, spawn.py none."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from vzcore.lifecycle import spawn, start

HOOK_CALLS = ("run_each", "call_each", "first_result")
ROOT = Path(__file__).resolve().parents[2]
IN_CT_HOOKS = ("vz_setup_child", "vz_switch_root", "vz_finalize_child", "vz_enter")


def hooks_called(function: object) -> list[str]:
    """The hook names a function passes to the plugin manager, in source order."""
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(function)))  # type: ignore[arg-type]
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in HOOK_CALLS and node.args
                and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, node.args[0].value))
    return [name for _line, name in sorted(found)]


def test_spawn_calls_no_hook() -> None:
    assert hooks_called(spawn) == []


def test_start_calls_every_start_hook_in_the_documented_order() -> None:
    assert hooks_called(start._start_locked) == [
        "vz_namespaces", "vz_pre_start", "vz_setup_host", "vz_post_start"]
    assert hooks_called(start._build) == ["vz_setup_child", "vz_switch_root"]
    assert hooks_called(start.finish_steps) == ["vz_finalize_child"]


@pytest.mark.parametrize("plugin", sorted(p.name for p in (ROOT / "plugins").iterdir()
                                          if (p / "pyproject.toml").exists()))
def test_a_plugin_module_imports_none_of_its_child_modules(plugin: str) -> None:
    """child_modules is the one way: the engine imports them, not the plugin module."""
    package = next((ROOT / "plugins" / plugin).glob("vzcore_*/plugin.py")).parent.name
    code = (f"import sys, {package}.plugin as p; info = p.vz_plugin_info(); "
            f"print(' '.join(m for m in info.child_modules if m.startswith('{package}.') "
            "and m in sys.modules)); "
            f"print(' '.join(h for h in {IN_CT_HOOKS!r} if hasattr(p, h) and not info.child_modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, undeclared = loaded.stdout.split("\n")[:2]
    assert imported == "", f"{package}.plugin imports its child modules {imported} itself"
    assert undeclared == "", f"{package} runs {undeclared} inside the CT but declares no child_modules"


def test_a_start_with_local_holder_forks_the_holder_itself() -> None:
    """An OCI runtime's start (its process inherits the caller's descriptors) never asks
    the console daemon; a plain start does."""
    assert start._holder_forker(None, None, set(), {spawn.LOCAL_HOLDER_OPTION: True}) is None  # type: ignore[arg-type]
    assert start._holder_forker(None, None, set(), {}) is not None  # type: ignore[arg-type]


def test_all_but_user_and_time_can_be_joined_or_shared_and_only_by_a_local_holder() -> None:
    from types import SimpleNamespace

    from vzcore.errors import VzError

    ct = SimpleNamespace(ctid=101)
    with pytest.raises(VzError, match="only the net, uts, ipc, mnt, pid, cgroup namespaces can be "
                                      "joined"):
        spawn.InitSpawner(ct, ["user"], None, None, None, join={"user": "/proc/1/ns/user"})  # type: ignore[arg-type]
    with pytest.raises(VzError, match="need the holder forked by vzctl"):
        spawn.InitSpawner(ct, ["net"], None, None, None, lambda ends: None,  # type: ignore[arg-type]
                          join={"net": "/proc/1/ns/net"})
    with pytest.raises(VzError, match="need the holder forked by vzctl"):
        spawn.InitSpawner(ct, ["net"], None, None, None, lambda ends: None,  # type: ignore[arg-type]
                          share=["net"])
    # what the holder and init make: neither the joined nor the shared ones
    spawner = spawn.InitSpawner(ct, ["mnt", "pid", "net", "uts", "ipc", "cgroup"], None, None,  # type: ignore[arg-type]
                                None, join={"pid": "/proc/1/ns/pid"}, share=["net", "cgroup"])
    assert spawner.names == {"mnt", "uts", "ipc"}


def test_own_namespace_is_neither_joined_nor_shared() -> None:
    options = {spawn.JOIN_OPTION: {"mnt": "/proc/1/ns/mnt"}, spawn.SHARE_OPTION: ["net"]}
    assert not spawn.own_namespace(options, "mnt")
    assert not spawn.own_namespace(options, "net")
    assert spawn.own_namespace(options, "pid") and spawn.own_namespace({}, "mnt")
