"""Typed plugin records: (de)serialisation, versions, the previous release's state file,
and the teardown check of recorded plugins, without root."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from vzcore.errors import RecordedPluginUnavailable
from vzcore.lifecycle import recorded
from vzcore.plugin import PluginInfo
from vzcore.plugin.manager import ACTIVE, DISABLED, NOT_SELECTED, Plugins, PluginStatus
from vzcore.records import PluginRecord, RecordError, decode, encode
from vzcore.runtime import FORMAT, Run, State
from vzcore_beancounters.record import BeancountersRecord
from vzcore_cpu.record import CpuRecord
from vzcore_network.netif import ResolvedNetif
from vzcore_network.record import NetworkRecord, Venet

PREVIOUS = Path(__file__).parent / "data" / "state-previous-release.json"


@attrs.frozen
class Pair:
    left: str
    right: int


def _pairs(values: Any) -> tuple[Pair, ...]:
    return tuple(Pair(**v) if isinstance(v, Mapping) else v for v in values)


@attrs.frozen(kw_only=True)
class DemoRecord(PluginRecord):
    VERSION: ClassVar[int] = 2

    path: str
    items: tuple[Pair, ...] = attrs.field(default=(), converter=_pairs)
    cpus: frozenset[int] = attrs.field(default=frozenset(), converter=frozenset)

    @classmethod
    def upgrade(cls, version: int, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return {"path": data["where"]} if version == 1 else None


def test_generated_json_round_trip() -> None:
    record = DemoRecord(path="/x", items=(Pair("a", 1),), cpus=frozenset({3, 1}))
    entry = encode(record)
    assert entry == {"version": 2, "record": {"path": "/x", "items": [{"left": "a", "right": 1}],
                                              "cpus": [1, 3]}}
    assert decode(DemoRecord, json.loads(json.dumps(entry)), ctid=101, plugin="demo") == record


def test_older_version_is_upgraded_or_refused_by_name() -> None:
    upgraded = decode(DemoRecord, {"version": 1, "record": {"where": "/y"}}, ctid=101, plugin="demo")
    assert upgraded == DemoRecord(path="/y")
    with pytest.raises(RecordError, match=r"CT 101: the demo plugin cannot read its record of "
                                          r"version 0 .*'vzctl stop --force 101'"):
        decode(DemoRecord, {"version": 0, "record": {"path": "/z"}}, ctid=101, plugin="demo")


def test_newer_version_is_refused_never_misread() -> None:
    with pytest.raises(RecordError, match=r"the demo plugin's record has version 3, newer than "
                                          r"this demo plugin reads \(2\); reinstall"):
        decode(DemoRecord, {"version": 3, "record": {"path": "/z"}}, ctid=101, plugin="demo")


def test_a_record_that_does_not_match_the_fields_is_refused() -> None:
    with pytest.raises(RecordError, match=r"the demo plugin's record .* does not match its fields"):
        decode(DemoRecord, {"version": 2, "record": {"path": "/z", "colour": "red"}},
               ctid=101, plugin="demo")


def _previous(tmp_path: Path) -> State:
    path = tmp_path / "101.json"
    shutil.copy(PREVIOUS, path)
    state = State.load(path, 101)
    assert state is not None
    return state


def test_previous_release_state_file_is_read_into_typed_records(tmp_path: Path) -> None:
    state = _previous(tmp_path)
    assert sorted(state.records) == ["beancounters", "cpu", "network"]
    assert state.variants == {"VE_LAYOUT": "simfs"}

    cpu = state.record("cpu", CpuRecord)
    assert cpu == CpuRecord(view="/tmp/vz-records-cap/run/vz/cpu/101", units=2000, limit=50,
                            cpus=1, mask=None)
    assert cpu.settings().limit == 50

    net = state.record("network", NetworkRecord)
    assert net.links == ("venet101", "veth101.0")
    assert net.venet == Venet("venet101", ("10.199.1.2",))
    assert net.veth == (ResolvedNetif(ifname="eth0", mac="02:B1:C7:20:55:5B",
                                      host_ifname="veth101.0", host_mac="FE:29:73:7E:61:BF",
                                      bridge="vzcapbr0", mac_filter=True, addresses=None),)

    ubc = state.record("beancounters", BeancountersRecord)
    assert ubc.limits["numproc"] == (200, 200)
    assert ubc.config["KMEMSIZE"] == "67108864:75497472"
    assert ubc.view == "/dev/user_beancounters" and ubc.unenforced == ("kmemsize",)


def test_previous_release_file_is_rewritten_in_the_new_format(tmp_path: Path) -> None:
    state = _previous(tmp_path)
    state.record("cpu", CpuRecord)  # read one record only: the others stay as they were
    state.save()
    data = json.loads(state.path.read_text())
    assert data["format"] == FORMAT
    assert data["plugins"]["network"]["version"] == 0, "not rewritten without its plugin"
    again = State.load(state.path, 101)
    assert again is not None
    assert again.record("network", NetworkRecord).links == ("venet101", "veth101.0")
    assert again.record("cpu", CpuRecord).units == 2000


def test_a_previous_release_record_no_upgrade_knows_is_refused_by_plugin_name(tmp_path: Path) -> None:
    state = _previous(tmp_path)
    with pytest.raises(RecordError, match="the cpu plugin cannot read its record of version 0"):
        state.record("cpu", DemoRecord)


def test_a_newer_state_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "101.json"
    path.write_text(json.dumps({"format": FORMAT + 1, "ctid": 101}))
    with pytest.raises(Exception, match="newer than this vzcore reads"):
        State.load(path, 101)


# -- run.record ---------------------------------------------------------------------------


def _plugins(*rows: tuple[str, str, type[PluginRecord] | None], layout: bool = True) -> Plugins:
    """Plugins with these statuses (and a template plugin offering simfs, with ``layout``)."""
    plugins = Plugins(pm=None, statuses={})  # type: ignore[arg-type]
    if layout:
        plugins.statuses["template"] = PluginStatus("template", lambda: "1", "template", ACTIVE)
        plugins.infos["template"] = PluginInfo(subsystem="template", summary="",
                                               variants={"VE_LAYOUT": ("simfs",)})
    for name, status, record in rows:
        plugins.statuses[name] = PluginStatus(name, lambda: "1", name, status,
                                              "DISABLED_PLUGINS in vz.conf" if status == DISABLED
                                              else "")
        if status == ACTIVE:
            plugins.infos[name] = PluginInfo(subsystem=name, summary="", record=record)
    return plugins


class _Ct:
    ctid = 101


def test_assigning_run_record_writes_the_state_file_once(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    state = State(tmp_path / "101.json", 101)
    run = Run(_Ct(), state, _plugins(("cpu", ACTIVE, CpuRecord))).for_plugin("cpu")  # type: ignore[arg-type]
    saves: list[int] = []
    real_save = State.save
    monkeypatch.setattr(State, "save", lambda self: (saves.append(1), real_save(self)))
    assert run.record is None
    run.record = CpuRecord(view="/v", units=1000, limit=0, cpus=0)
    assert len(saves) == 1
    assert json.loads(state.path.read_text())["plugins"]["cpu"]["record"]["view"] == "/v"
    run.amend(attrs.evolve(run.record, limit=10))
    assert len(saves) == 1, "amend waits for the next write"
    assert run.record.limit == 10
    with pytest.raises(RecordError, match="the cpu plugin recorded a DemoRecord"):
        run.record = DemoRecord(path="/x")


# -- teardown of recorded plugins ---------------------------------------------------------


def test_a_disabled_recorded_plugin_is_named_with_what_it_left(tmp_path: Path) -> None:
    state = _previous(tmp_path)
    plugins = _plugins(("network", ACTIVE, NetworkRecord), ("beancounters", ACTIVE, BeancountersRecord),
                       ("cpu", DISABLED, None))
    with pytest.raises(RecordedPluginUnavailable) as refused:
        recorded.check(plugins, _Ct(), state, verb="stop", force=False)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "the cpu plugin is disabled (DISABLED_PLUGINS in vz.conf)" in message
    assert '"view": "/tmp/vz-records-cap/run/vz/cpu/101"' in message
    assert "remove cpu from DISABLED_PLUGINS" in message and "vzctl stop --force 101" in message
    assert refused.value.exit_code == 33
    dropped = recorded.check(plugins, _Ct(), state, verb="stop", force=True)  # type: ignore[arg-type]
    assert [u.plugin for u in dropped] == ["cpu"]


def test_missing_replaced_and_unreadable_recorded_plugins_are_named(tmp_path: Path) -> None:
    state = _previous(tmp_path)
    plugins = _plugins(("beancounters", NOT_SELECTED, None), ("cpu", ACTIVE, DemoRecord))
    found = {u.plugin: u.why for u in recorded.unavailable(plugins, state)}
    assert found["network"] == "is not installed"
    assert found["beancounters"].startswith("is no longer its subsystem's provider")
    assert "cannot read its record" in found["cpu"]


def test_a_mounted_layout_without_its_provider_is_named(tmp_path: Path) -> None:
    state = _previous(tmp_path)  # mounted by the start, layout simfs
    plugins = _plugins(("network", ACTIVE, NetworkRecord), ("beancounters", ACTIVE, BeancountersRecord),
                       ("cpu", ACTIVE, CpuRecord), layout=False)
    [layout] = recorded.unavailable(plugins, state)
    assert layout.plugin == "" and "the plugin offering layout 'simfs' (VE_LAYOUT) is not active" \
        in layout.describe()
    plugins.infos["cpu"] = PluginInfo(subsystem="cpu", summary="", record=CpuRecord,
                                      variants={"VE_LAYOUT": ("simfs",)})
    assert recorded.unavailable(plugins, state) == []
