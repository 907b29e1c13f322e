"""Plugin loading, provider selection and hook calls, with plugins made in the test."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from vzcore import hookimpl
from vzcore.errors import MissingSubsystem, PluginConflict, PluginError
from vzcore.plugin import PluginInfo
from vzcore.plugin.manager import ACTIVE, CONFLICT, DISABLED, FAILED, NOT_SELECTED
from vzcore.plugin.manager import load_plugins as _load_plugins


def load_plugins(config: dict[str, str], **kwargs: object):  # type: ignore[no-untyped-def]
    """Only the plugins the test names: installed ones would change the answers."""
    return _load_plugins(config, autoload=False, **kwargs)  # type: ignore[arg-type]


_CREATED: list[str] = []


def make_plugin(name: str, subsystem: str, **hooks: object) -> str:
    """Register a module ``name`` providing ``subsystem`` with extra hook functions."""
    module = types.ModuleType(name)

    @hookimpl
    def vz_plugin_info() -> PluginInfo:
        return PluginInfo(subsystem=subsystem, summary=f"test plugin {name}")

    module.vz_plugin_info = vz_plugin_info  # type: ignore[attr-defined]
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    sys.modules[name] = module
    _CREATED.append(name)
    return name


@pytest.fixture(autouse=True)
def _forget_modules() -> Iterator[None]:
    yield
    while _CREATED:
        sys.modules.pop(_CREATED.pop(), None)


def conf(*names: str, **extra: str) -> dict[str, str]:
    return {"PLUGINS": " ".join(names), **extra}


def test_one_provider_is_active() -> None:
    plugins = load_plugins(conf(make_plugin("t_iso", "isolation")))
    assert plugins.provider("isolation") == "t_iso"
    assert plugins.statuses["t_iso"].state == ACTIVE
    assert plugins.statuses["core"].state == ACTIVE


def test_two_providers_without_a_choice_are_refused_naming_both() -> None:
    a, b = make_plugin("t_iso_a", "isolation"), make_plugin("t_iso_b", "isolation")
    plugins = load_plugins(conf(a, b))
    assert plugins.statuses[a].state == plugins.statuses[b].state == CONFLICT
    with pytest.raises(PluginConflict, match=r"'t_iso_a', 't_iso_b'.*ISOLATION_PROVIDER"):
        plugins.require("isolation", "start")


def test_provider_key_chooses_one() -> None:
    a, b = make_plugin("t_iso_a", "isolation"), make_plugin("t_iso_b", "isolation")
    plugins = load_plugins(conf(a, b, ISOLATION_PROVIDER=b))
    assert plugins.require("isolation", "start") == b
    assert plugins.statuses[a].state == NOT_SELECTED
    assert "ISOLATION_PROVIDER=t_iso_b" in plugins.statuses[a].reason


def test_disabled_plugin_is_never_imported() -> None:
    plugins = load_plugins(conf("t_never_imported", DISABLED_PLUGINS="t_never_imported"))
    assert plugins.statuses["t_never_imported"].state == DISABLED
    assert "t_never_imported" not in sys.modules


def test_missing_subsystem_is_named() -> None:
    with pytest.raises(MissingSubsystem, match="'isolation' subsystem") as info:
        load_plugins(conf()).require("isolation", "start")
    assert info.value.exit_code == 5


def test_broken_plugin_is_reported_not_fatal() -> None:
    plugins = load_plugins(conf("t_does_not_exist"))
    assert plugins.statuses["t_does_not_exist"].state == FAILED
    assert "t_does_not_exist" in plugins.statuses["t_does_not_exist"].reason


def test_strict_mode_makes_a_broken_plugin_fatal() -> None:
    with pytest.raises(PluginError, match="t_does_not_exist"):
        load_plugins(conf("t_does_not_exist"), strict=True)


def test_hookimpl_with_defaults_is_refused() -> None:
    def vz_namespaces(ct=None):  # type: ignore[no-untyped-def]
        return ()

    name = make_plugin("t_defaults", "isolation", vz_namespaces=vz_namespaces)
    plugins = load_plugins(conf(name))
    assert plugins.statuses[name].state == FAILED
    assert "default" in plugins.statuses[name].reason


def test_hooks_run_in_subsystem_order_and_teardown_in_reverse() -> None:
    calls: list[str] = []

    def recorder(sub: str):  # type: ignore[no-untyped-def]
        def vz_destroy(ct: object) -> None:
            calls.append(sub)

        return vz_destroy

    names = [make_plugin(f"t_{sub}", sub, vz_destroy=recorder(sub))
             for sub in ("network", "motd", "isolation", "template")]
    plugins = load_plugins(conf(*names))
    plugins.run_each("vz_destroy", ct=None)
    assert calls == ["template", "isolation", "network", "motd"]
    calls.clear()
    plugins.run_each("vz_destroy", reverse=True, ct=None)
    assert calls == ["motd", "network", "isolation", "template"]


def test_failure_names_the_plugin_and_collecting_goes_on() -> None:
    def fail(ct: object) -> None:
        raise RuntimeError("disk on fire")

    calls: list[str] = []
    plugins = load_plugins(conf(make_plugin("t_bad", "network", vz_destroy=fail),
                                make_plugin("t_good", "template", vz_destroy=lambda ct: calls.append("ok"))))
    with pytest.raises(PluginError, match="plugin 't_bad' failed in vz_destroy: disk on fire"):
        plugins.run_each("vz_destroy", ct=None)
    errors: list[PluginError] = []
    plugins.run_each("vz_destroy", reverse=True, on_error=errors.append, ct=None)
    assert [e.plugin for e in errors] == ["t_bad"]
    assert calls == ["ok", "ok"]


def test_variants_are_offered_by_active_plugins() -> None:
    module = make_plugin("t_layout", "quota")
    sys.modules[module].vz_plugin_info = hookimpl(  # type: ignore[attr-defined]
        lambda: PluginInfo(subsystem="quota", summary="x", variants={"VE_LAYOUT": ("image",)}))
    plugins = load_plugins(conf(module))
    assert plugins.variant_offers("VE_LAYOUT") == {"image": "t_layout"}


def test_child_modules_are_imported_and_a_missing_one_names_its_plugin() -> None:
    good, bad = make_plugin("t_childful", "cpu"), make_plugin("t_childless", "beancounters")
    sys.modules[good].vz_plugin_info = hookimpl(  # type: ignore[attr-defined]
        lambda: PluginInfo(subsystem="cpu", summary="x", child_modules=("t_child_setup",)))
    sys.modules[bad].vz_plugin_info = hookimpl(  # type: ignore[attr-defined]
        lambda: PluginInfo(subsystem="beancounters", summary="x", child_modules=("t_gone",)))
    only_good, both = load_plugins(conf(good)), load_plugins(conf(good, bad))
    loaded: list[str] = []

    def importer(name: str) -> types.ModuleType:
        loaded.append(name)
        if name == "t_child_setup":  # what a real plugin ships on disk
            return types.ModuleType(name)
        raise ModuleNotFoundError(f"No module named {name!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("importlib.import_module", importer)
        only_good.import_child_modules()
        assert loaded == ["t_child_setup"]
        with pytest.raises(PluginError, match="plugin 't_childless' failed in child_modules: "
                                              "No module named 't_gone'"):
            both.import_child_modules()


def test_every_hook_declares_its_options_and_the_manager_names_no_hook() -> None:
    import inspect

    from vzcore import hookspecs
    from vzcore.docgen import hook_names
    from vzcore.plugin import manager

    for name in hook_names():
        assert isinstance(hookspecs.options_of(name), hookspecs.HookOptions), name
    assert hookspecs.options_of("vz_parameters").collect
    assert hookspecs.options_of("vz_switch_root").first_result
    assert hookspecs.options_of("vz_validate").input_errors
    source = inspect.getsource(manager)
    assert "vz_validate" not in source and "vz_parameters" not in source


def test_an_error_while_a_collected_hook_yields_names_plugin_and_hook() -> None:
    def vz_list_fields():  # type: ignore[no-untyped-def]
        yield "first"
        raise RuntimeError("no second field")

    plugins = load_plugins(conf(make_plugin("t_fields", "motd", vz_list_fields=vz_list_fields)))
    with pytest.raises(PluginError, match="plugin 't_fields' failed in vz_list_fields: "
                                          "no second field"):
        list(plugins.call_each("vz_list_fields"))


def test_a_validate_refusal_keeps_its_message_and_exit_code_and_names_the_plugin() -> None:
    from vzcore.errors import InvalidValue

    def refuse(ct: object, changes: object, verb: str) -> None:
        raise InvalidValue("CT 101: --motd is too long; shorten it")

    def crash(ct: object, changes: object, verb: str) -> None:
        raise KeyError("MOTD")

    refusing = load_plugins(conf(make_plugin("t_refuse", "motd", vz_validate=refuse)))
    with pytest.raises(PluginError) as caught:
        refusing.run_each("vz_validate", ct=None, changes=None, verb="set")
    assert str(caught.value) == ("CT 101: --motd is too long; shorten it "
                                 "(plugin 't_refuse', vz_validate)")
    assert caught.value.exit_code == 21 and caught.value.plugin == "t_refuse"
    crashing = load_plugins(conf(make_plugin("t_crash", "motd", vz_validate=crash)))
    with pytest.raises(PluginError, match=r"^plugin 't_crash' failed in vz_validate: 'MOTD'$") as bug:
        crashing.run_each("vz_validate", ct=None, changes=None, verb="set")
    assert bug.value.exit_code == 3


def test_first_result_stops_at_the_first_answer_and_needs_the_declaration() -> None:
    calls: list[str] = []

    def answer(sub: str):  # type: ignore[no-untyped-def]
        def vz_switch_root(ct: object, run: object) -> bool:
            calls.append(sub)
            return True

        return vz_switch_root

    plugins = load_plugins(conf(make_plugin("t_iso", "isolation", vz_switch_root=answer("isolation")),
                                make_plugin("t_net", "network", vz_switch_root=answer("network"))))
    assert plugins.first_result("vz_switch_root", ct=None, run=None) is True
    assert calls == ["isolation"]
    with pytest.raises(TypeError, match="vz_destroy is not declared first_result"):
        plugins.first_result("vz_destroy", ct=None)
