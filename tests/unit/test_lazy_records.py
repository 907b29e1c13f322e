"""Lazy record references (``PluginInfo.record = "package.module:Class"``): resolved on
first use and kept, refused by plugin name when wrong, never imported by a start that
does not touch the record; without root."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore import hookimpl
from vzcore.errors import PluginError, VzError
from vzcore.lifecycle import recorded
from vzcore.plugin import PluginInfo, is_record_reference
from vzcore.plugin.manager import ACTIVE, FAILED, Plugins, PluginStatus, load_plugins
from vzcore.records import PluginRecord
from vzcore.runtime import Run, State

RECORD_MODULE = '''
import attrs
from vzcore.records import PluginRecord

@attrs.frozen
class LinksRecord(PluginRecord):
    links: tuple[str, ...] = attrs.field(default=(), converter=tuple)

class NotARecord:
    pass
'''


@pytest.fixture
def record_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A record module on the import path, not yet imported; its name (unique per test,
    so the cache of resolved references starts empty for it)."""
    name = f"t_lazy_record_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(RECORD_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _plugins(name: str, info: PluginInfo) -> Plugins:
    plugins = Plugins(pm=None, statuses={})  # type: ignore[arg-type]
    plugins.statuses[name] = PluginStatus(name, lambda: "1", name, ACTIVE)
    plugins.infos[name] = info
    return plugins


class _Ct:
    ctid = 101


def test_a_reference_is_imported_on_first_use_only(record_module: str) -> None:
    info = PluginInfo(subsystem="tunnel", summary="", record=f"{record_module}:LinksRecord")
    assert record_module not in sys.modules
    cls = info.record_class("tunnel")
    assert record_module in sys.modules
    assert cls is sys.modules[record_module].LinksRecord
    assert issubclass(cls, PluginRecord)


def test_a_resolved_reference_is_kept(record_module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = f"{record_module}:LinksRecord"
    first = PluginInfo(subsystem="tunnel", summary="", record=reference).record_class("tunnel")
    imports: list[str] = []
    monkeypatch.setattr("importlib.import_module", lambda name: imports.append(name))
    again = PluginInfo(subsystem="tunnel", summary="", record=reference)  # a new load's info
    assert again.record_class("tunnel") is first
    assert imports == []


def test_a_class_and_none_are_returned_as_declared() -> None:
    class Direct(PluginRecord):
        pass

    assert PluginInfo(subsystem="x", summary="", record=Direct).record_class("x") is Direct
    assert PluginInfo(subsystem="x", summary="").record_class("x") is None


@pytest.mark.parametrize("value", ["tunnel.record", "tunnel.record:", ":LinksRecord",
                                   "tunnel..record:LinksRecord", "tunnel.record:Links.Record",
                                   "1tunnel:LinksRecord", "tunnel.record:LinksRecord "])
def test_a_malformed_reference_is_refused_when_declared(value: str) -> None:
    assert not is_record_reference(value)
    with pytest.raises(ValueError, match=re.escape("is not a lazy reference 'package.module:Class'")):
        PluginInfo(subsystem="tunnel", summary="", record=value)


@pytest.mark.parametrize("value", [42, dict, object()])
def test_a_record_that_is_no_record_class_is_refused_when_declared(value: object) -> None:
    with pytest.raises(TypeError, match=re.escape("is not a vzcore.records.PluginRecord subclass")):
        PluginInfo(subsystem="tunnel", summary="", record=value)  # type: ignore[arg-type]


def test_a_malformed_reference_fails_the_plugin_by_name() -> None:
    module = types.ModuleType("t_lazy_bad_shape")

    @hookimpl
    def vz_plugin_info() -> PluginInfo:
        return PluginInfo(subsystem="tunnel", summary="", record="t_lazy_bad_shape.LinksRecord")

    module.vz_plugin_info = vz_plugin_info  # type: ignore[attr-defined]
    sys.modules["t_lazy_bad_shape"] = module
    try:
        plugins = load_plugins({"PLUGINS": "t_lazy_bad_shape"}, autoload=False)
        assert plugins.statuses["t_lazy_bad_shape"].state == FAILED
        assert "'package.module:Class'" in plugins.statuses["t_lazy_bad_shape"].reason
        with pytest.raises(PluginError, match="plugin 't_lazy_bad_shape' failed in vz_plugin_info"):
            load_plugins({"PLUGINS": "t_lazy_bad_shape"}, autoload=False, strict=True)
    finally:
        sys.modules.pop("t_lazy_bad_shape", None)


@pytest.mark.parametrize(("target", "why"), [
    ("t_lazy_no_such_module:LinksRecord", "does not import (ModuleNotFoundError"),
    ("{module}:Missing", "has no Missing"),
    ("{module}:NotARecord", "is not a vzcore.records.PluginRecord subclass"),
])
def test_a_bad_reference_is_named_with_its_plugin_when_used(record_module: str, target: str,
                                                            why: str) -> None:
    info = PluginInfo(subsystem="tunnel", summary="", record=target.format(module=record_module))
    with pytest.raises(VzError) as refused:
        info.record_class("tunnel")
    message = str(refused.value)
    assert message.startswith("the tunnel plugin's PluginInfo.record ")
    assert why in message
    assert "reinstall the tunnel plugin" in message
    with pytest.raises(VzError, match=re.escape(why)):  # not kept: asked again, refused again
        info.record_class("tunnel")


def test_run_record_resolves_the_reference_and_checks_assignments(tmp_path: Path,
                                                                  record_module: str) -> None:
    info = PluginInfo(subsystem="tunnel", summary="", record=f"{record_module}:LinksRecord")
    state = State(tmp_path / "101.json", 101)
    run = Run(_Ct(), state, _plugins("tunnel", info)).for_plugin("tunnel")  # type: ignore[arg-type]
    assert run.record is None
    assert record_module not in sys.modules, "nothing recorded: the record module stays unloaded"
    links = info.record_class("tunnel")
    assert links is not None
    run.record = links(links=("tun101",))  # type: ignore[call-arg]
    again = State.load(state.path, 101)
    assert again is not None
    reread = Run(_Ct(), again, _plugins("tunnel", info)).for_plugin("tunnel")  # type: ignore[arg-type]
    assert reread.record == links(links=("tun101",))  # type: ignore[call-arg]


def test_a_bad_reference_of_a_recorded_plugin_stops_teardown_by_name(tmp_path: Path) -> None:
    path = tmp_path / "101.json"
    path.write_text(json.dumps({"format": 2, "ctid": 101, "plugins": {
        "tunnel": {"version": 1, "record": {"links": ["tun101"]}}}}))
    state = State.load(path, 101)
    assert state is not None
    info = PluginInfo(subsystem="tunnel", summary="", record="t_lazy_no_such_module:LinksRecord")
    [found] = recorded.unavailable(_plugins("tunnel", info), state)
    assert found.plugin == "tunnel"
    assert found.why.startswith("cannot read its record (the tunnel plugin's PluginInfo.record "
                                "'t_lazy_no_such_module:LinksRecord' does not import")
    assert '"tun101"' in found.left


FIRST_PARTY = {"network": "vzcore_network", "cpu": "vzcore_cpu", "beancounters": "vzcore_beancounters"}


@pytest.mark.parametrize("name", sorted(FIRST_PARTY))
def test_first_party_plugins_name_their_record_lazily(name: str) -> None:
    """Loading the plugin module does not import its record module; the reference names it."""
    package = FIRST_PARTY[name]
    code = (f"import sys, {package}.plugin as p\n"
            f"assert '{package}.record' not in sys.modules, 'imported at load'\n"
            f"info = p.vz_plugin_info()\n"
            f"assert isinstance(info.record, str), info.record\n"
            f"cls = info.record_class('{name}')\n"
            f"assert cls is sys.modules['{package}.record'].__dict__[cls.__name__]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _lazy_plugin(name: str, reference: str, **hooks: object) -> None:
    module = types.ModuleType(name)

    @hookimpl
    def vz_plugin_info() -> PluginInfo:
        return PluginInfo(subsystem=name, summary="", record=reference)

    module.vz_plugin_info = vz_plugin_info  # type: ignore[attr-defined]
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    sys.modules[name] = module


def test_records_of_plugins_with_in_ct_hooks_are_imported_before_the_ct(
        record_module: str, tmp_path: Path) -> None:
    """A hook inside the CT reads run.record where the host's files may be out of reach:
    its class comes with the child modules; a plugin without such hooks waits."""
    other = f"{record_module}_host"
    (tmp_path / f"{other}.py").write_text(RECORD_MODULE)

    def vz_enter(ct: object, run: object) -> None:
        pass

    _lazy_plugin("t_lazy_inside", f"{record_module}:LinksRecord", vz_enter=vz_enter)
    _lazy_plugin("t_lazy_host", f"{other}:LinksRecord")
    try:
        plugins = load_plugins({"PLUGINS": "t_lazy_inside t_lazy_host"}, autoload=False)
        assert record_module not in sys.modules
        plugins.import_child_modules()
        assert record_module in sys.modules
        assert other not in sys.modules
    finally:
        for name in ("t_lazy_inside", "t_lazy_host", other):
            sys.modules.pop(name, None)


def test_a_bad_reference_of_a_plugin_with_in_ct_hooks_stops_before_the_ct() -> None:
    def vz_setup_child(ct: object, run: object) -> None:
        pass

    _lazy_plugin("t_lazy_broken", "t_lazy_no_such_module:LinksRecord", vz_setup_child=vz_setup_child)
    try:
        plugins = load_plugins({"PLUGINS": "t_lazy_broken"}, autoload=False)
        with pytest.raises(VzError, match=re.escape("the t_lazy_broken plugin's PluginInfo.record")):
            plugins.import_child_modules()
    finally:
        sys.modules.pop("t_lazy_broken", None)
