"""Parameters declared by plugins: parsing into change sets, clashes between plugins."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Sequence

import pytest

from vzcore import hookimpl
from vzcore.errors import InvalidValue
from vzcore.params import Parameter
from vzcore.plugin import PluginInfo
from vzcore.plugin.manager import load_plugins as _load_plugins
from vzcore.plugin.registry import DeclarationConflict, Registry
from vzcore.values import ListOf, PairOf, Size, Text


def load_plugins(config: dict[str, str]):  # type: ignore[no-untyped-def]
    """Only the plugins the test names: installed ones would change the answers."""
    return _load_plugins(config, autoload=False)


def add_addresses(old: str | None, values: Sequence[str]) -> str | None:
    words = (old or "").split()
    return " ".join(words + [v for v in values if v not in words]) or None


def del_addresses(old: str | None, values: Sequence[str]) -> str | None:
    words = [] if "all" in values else [w for w in (old or "").split() if w not in values]
    return " ".join(words) or None


PARAMS = [
    Parameter(name="numproc", key="NUMPROC", type=PairOf(Size(0)), live=True, short="p",
              help="processes"),
    Parameter(name="ipadd", key="IP_ADDRESS", type=Text(), multiple=True, merge=add_addresses,
              aliases=("ip",), on_create=True, help="add an address"),
    Parameter(name="ipdel", key="IP_ADDRESS", type=Text(), multiple=True, merge=del_addresses,
              help="remove an address"),
]


def module(name: str, params: list[Parameter]) -> str:
    mod = types.ModuleType(name)
    mod.vz_plugin_info = hookimpl(lambda: PluginInfo(subsystem=name, summary=name))  # type: ignore[attr-defined]
    mod.vz_parameters = hookimpl(lambda: params)  # type: ignore[attr-defined]
    sys.modules[name] = mod
    return name


@pytest.fixture
def registry() -> Iterator[Registry]:
    name = module("t_params", PARAMS)
    yield Registry.build(load_plugins({"PLUGINS": name}))
    sys.modules.pop(name)


def test_options_and_aliases(registry: Registry) -> None:
    assert registry.parameters["ip"] is registry.parameters["ipadd"]
    assert registry.owners["IP_ADDRESS"] == "t_params"
    assert "--numproc" in registry.parameters["numproc"].options
    assert "-p" in registry.parameters["numproc"].options


def test_plan_changes_in_order_given(registry: Registry) -> None:
    changes, _ = registry.plan_changes(
        101, {"IP_ADDRESS": "10.0.0.1 10.0.0.2"},
        {"ipdel": ["all"], "ipadd": ["10.0.0.9", "10.0.0.8"], "numproc": ["40:50"]}, verb="set")
    assert changes["IP_ADDRESS"].old == "10.0.0.1 10.0.0.2"
    assert changes["IP_ADDRESS"].new == "10.0.0.9 10.0.0.8"
    assert changes["NUMPROC"].new == "40:50"


def set_label(old: str | None, values: Sequence[str], others: dict[str, list[str]]) -> str | None:
    if not others["target"]:
        raise ValueError("--label needs --target")
    return f"{others['target'][-1]}={values[-1]}"


def test_a_merge_sees_the_options_it_names_whatever_their_order() -> None:
    params = [Parameter(name="label", key="LABEL", type=Text(), merge=set_label, context=("target",),
                        help="a label for the target"),
              Parameter(name="target", key="TARGET", type=Text(), help="what gets the label")]
    name = module("t_context", params)
    try:
        registry = Registry.build(load_plugins({"PLUGINS": name}))
        changes, _ = registry.plan_changes(101, {}, {"label": ["red"], "target": ["eth0"]}, verb="set")
        assert changes["LABEL"].new == "eth0=red"
        with pytest.raises(InvalidValue, match="--label: --label needs --target"):
            registry.plan_changes(101, {}, {"label": ["red"]}, verb="set")
    finally:
        sys.modules.pop(name)


def test_unchanged_keys_are_left_out(registry: Registry) -> None:
    changes, _ = registry.plan_changes(101, {"NUMPROC": "40:40"}, {"numproc": ["40"]}, verb="set")
    assert "NUMPROC" not in changes


def test_bad_value_names_ct_and_option(registry: Registry) -> None:
    with pytest.raises(InvalidValue, match=r"CT 101: invalid value for --numproc: barrier 50 is above"):
        registry.plan_changes(101, {}, {"numproc": ["50:40"]}, verb="set")


def test_set_only_option_refused_at_create(registry: Registry) -> None:
    with pytest.raises(InvalidValue, match="--numproc cannot be given to create"):
        registry.plan_changes(101, {}, {"numproc": ["5"]}, verb="create")


def test_repeating_a_single_option_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidValue, match="given 2 times"):
        registry.plan_changes(101, {}, {"numproc": ["5", "6"]}, verb="set")


def test_two_plugins_declaring_one_key_is_a_conflict() -> None:
    a = module("t_a", [Parameter(name="alpha", key="SAME", type=Text(), help="a")])
    b = module("t_b", [Parameter(name="beta", key="SAME", type=Text(), help="b")])
    try:
        with pytest.raises(DeclarationConflict, match="SAME is owned by plugins 't_a' and 't_b'"):
            Registry.build(load_plugins({"PLUGINS": f"{a} {b}"}))
    finally:
        sys.modules.pop(a)
        sys.modules.pop(b)


def test_list_of_values() -> None:
    assert ListOf(Size(0)).parse("1 2 3") == (1, 2, 3)
