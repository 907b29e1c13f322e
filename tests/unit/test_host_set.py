"""``vzctl set 0``: the host's own settings (host keys in vz.conf), as in OpenVZ."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vzcore import hookimpl
from vzcore.changes import ChangeSet
from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import InvalidValue
from vzcore.lifecycle.setparams import set_parameters
from vzcore.params import Parameter
from vzcore.paths import Paths
from vzcore.plugin import PluginInfo
from vzcore.plugin.manager import load_plugins
from vzcore.values import Integer, Text

APPLIED: list[tuple[int, bool, dict[str, Any], object]] = []


def _plugin() -> types.ModuleType:
    mod = types.ModuleType("t_hostset")

    @hookimpl
    def vz_plugin_info() -> PluginInfo:
        return PluginInfo(subsystem="t_hostset", summary="test")

    @hookimpl
    def vz_parameters() -> list[Parameter]:
        return [Parameter(name="weight", key="WEIGHT", type=Integer(8, 500000), live=True,
                          host_key="VE0WEIGHT", help="a weight"),
                Parameter(name="motd", key="MOTD", type=Text(), live=True, help="a text")]

    @hookimpl
    def vz_apply(ct: Container, changes: ChangeSet, run: object) -> None:
        APPLIED.append((ct.ctid, ct.is_host, {k: (c.old, c.new) for k, c in changes.items()}, run))

    mod.vz_plugin_info = vz_plugin_info  # type: ignore[attr-defined]
    mod.vz_parameters = vz_parameters  # type: ignore[attr-defined]
    mod.vz_apply = vz_apply  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    sys.modules["t_hostset"] = _plugin()
    APPLIED.clear()
    paths = Paths(tmp_path)
    (tmp_path / "etc/vz").mkdir(parents=True)
    (tmp_path / "etc/vz/vz.conf").write_text('# host\nVE0WEIGHT="1000"\n')
    yield Engine(paths, plugins=load_plugins({"PLUGINS": "t_hostset"}, autoload=False))
    sys.modules.pop("t_hostset")


def test_host_key_is_applied_at_once_and_saved_to_vz_conf(engine: Engine) -> None:
    host = engine.container(0)
    assert host.is_host and not host.exists
    set_parameters(engine, host, {"weight": ["1000"]}, save=False)
    # The same value as vz.conf is still applied: the live value may differ from it.
    assert APPLIED == [(0, True, {"VE0WEIGHT": (None, "1000")}, None)]
    set_parameters(engine, host, {"weight": ["2500"]}, save=True)
    assert APPLIED[-1][2] == {"VE0WEIGHT": (None, "2500")}
    text = engine.paths.vz_conf.read_text()
    assert text == '# host\nVE0WEIGHT="2500"\n'
    assert not engine.paths.ct_conf(0).exists()


def test_host_refuses_options_without_host_key(engine: Engine) -> None:
    with pytest.raises(InvalidValue, match=r"CT 0 is the host: --motd cannot be set for it; "
                                           r"the host takes --weight"):
        set_parameters(engine, engine.container(0), {"motd": ["hi"], "weight": ["9"]}, save=True)
    assert APPLIED == []


def test_host_values_are_parsed_like_ct_values(engine: Engine) -> None:
    with pytest.raises(InvalidValue, match=r"outside 8\.\.500000"):
        set_parameters(engine, engine.container(0), {"weight": ["7"]}, save=True)
    assert APPLIED == []
