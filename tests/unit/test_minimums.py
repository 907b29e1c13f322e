"""Parameter minimums: the declaration, the comparison, set/create and saved configs, and
the messages of a refused fork (no root)."""

from __future__ import annotations

import errno
import re
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from vzcore import hookimpl
from vzcore.conffile import ConfigFile
from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import InvalidValue, PluginError, VzError, describe
from vzcore.lifecycle.forklimit import ForkLimit
from vzcore.params import Parameter
from vzcore.paths import Paths
from vzcore.plugin import PluginInfo
from vzcore.plugin.manager import load_plugins
from vzcore.plugin.registry import Registry
from vzcore.values import LONG_MAX, Integer, Pair, PairOf, Size, Text, below

NUMPROC = Parameter(name="numproc", key="NUMPROC", type=PairOf(Size(0)), minimum="8", help="p")
PHYSPAGES = Parameter(name="physpages", key="PHYSPAGES", type=PairOf(Size(4096)),
                      minimum="0:32M", help="RAM")
RAM = Parameter(name="ram", key="PHYSPAGES", type=Size(1), minimum="32M",
                merge=lambda _old, values: f"0:{values[-1] // 4096}", help="RAM")


@pytest.fixture
def registry() -> Iterator[Registry]:
    mod = types.ModuleType("t_minimums")
    mod.vz_plugin_info = hookimpl(lambda: PluginInfo(subsystem="t", summary="t"))  # type: ignore[attr-defined]
    mod.vz_parameters = hookimpl(lambda: [NUMPROC, PHYSPAGES, RAM])  # type: ignore[attr-defined]
    sys.modules["t_minimums"] = mod
    yield Registry.build(load_plugins({"PLUGINS": "t_minimums"}, autoload=False))
    sys.modules.pop("t_minimums")


def test_below_compares_numbers_and_each_part_of_a_pair() -> None:
    assert below(7, 8) and not below(8, 8) and not below(LONG_MAX, 8)
    assert below(Pair(0, 100), Pair(0, 200)) and below(Pair(7, 9), Pair(8, 8))
    assert not below(Pair(0, 200), Pair(0, 200)) and not below(Pair(LONG_MAX, LONG_MAX), Pair(8, 8))
    assert not below("abc", "abd") and not below(True, 2)  # unordered grammars: never below


def test_a_minimum_must_be_in_the_parameters_own_grammar() -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        Parameter(name="x", key="X", type=Integer(), minimum="few", help="x")
    assert NUMPROC.below_minimum(Pair(7, 7)) and not NUMPROC.below_minimum(Pair(8, 8))
    assert not Parameter(name="t", key="T", type=Text(), help="t").below_minimum("")


@pytest.mark.parametrize(("option", "text", "shown"), [
    ("numproc", "0", "below its minimum 8,"),
    ("numproc", "7:100", "below its minimum 8,"),
    ("physpages", "0:16M", "below its minimum 0:32M (barrier:limit)"),
    ("ram", "16M", "below its minimum 32M"),
])
def test_set_refuses_a_value_below_the_minimum(registry: Registry, option: str, text: str,
                                               shown: str) -> None:
    with pytest.raises(InvalidValue, match=rf"^CT 101: --{option} {text} is {re.escape(shown)}") as exc:
        registry.plan_changes(101, {}, {option: [text]}, verb="set")
    assert exc.value.exit_code == 21
    assert f"give {registry.parameters[option].minimum} or more" in str(exc.value)


@pytest.mark.parametrize(("option", "text"), [("numproc", "8"), ("numproc", "unlimited"),
                                              ("physpages", "0:32M"), ("ram", "1G")])
def test_the_minimum_itself_and_unlimited_are_accepted(registry: Registry, option: str,
                                                       text: str) -> None:
    changes, _parsed = registry.plan_changes(101, {}, {option: [text]}, verb="set")
    assert len(changes) == 1


def container(tmp_path: Path, ct_lines: list[str], global_lines: Sequence[str] = ()) -> Container:
    paths = Paths(tmp_path)
    return Container(101, paths, ConfigFile(paths.vz_conf, list(global_lines)),
                     ConfigFile(paths.ct_conf(101), ct_lines))


def test_a_saved_value_below_the_minimum_is_refused_naming_key_and_fix(registry: Registry,
                                                                        tmp_path: Path) -> None:
    ct = container(tmp_path, ['NUMPROC="2:2"'])
    with pytest.raises(InvalidValue) as exc:
        registry.check_minimums(ct)
    message = str(exc.value)
    assert message.startswith('CT 101: NUMPROC="2:2" in ') and "minimum of --numproc, 8" in message
    assert message.endswith("fix it with 'vzctl set 101 --numproc 8 --save' or more")
    with pytest.raises(InvalidValue, match=r"PHYSPAGES=\"0:1024\" in .*/vz\.conf .* --physpages, "
                                           r"0:32M .*; fix it there, or give the CT its own value"):
        registry.check_minimums(container(tmp_path, [], ['PHYSPAGES="0:1024"']))
    with pytest.raises(InvalidValue, match=r"in /samples/ve-x\.conf-sample .*; fix the sample$"):
        registry.check_minimums(ct, sample=Path("/samples/ve-x.conf-sample"))


def test_saved_values_at_or_above_the_minimum_or_malformed_pass(registry: Registry,
                                                                 tmp_path: Path) -> None:
    registry.check_minimums(container(tmp_path, ['NUMPROC="8"', 'PHYSPAGES="0:256M"']))
    # A malformed value is the owning plugin's to report (its vz_validate names it).
    registry.check_minimums(container(tmp_path, ['NUMPROC="lots"']))


def test_every_installed_resource_parameter_declares_a_minimum() -> None:
    registry = Engine(Paths("/nonexistent-vz-root")).registry
    resources = {name for name, owner in registry.param_owner.items()
                 if owner in ("beancounters", "cpu")}
    unordered = {"cpumask", "vm_overcommit"}  # a CPU list, a ratio: their grammar bounds them
    missing = sorted(n for n in resources - unordered if registry.parameters[n].minimum is None)
    assert not missing
    assert registry.parameters["numproc"].minimum == "8"
    assert registry.parameters["ram"].minimum == "32M"


def test_a_fork_refused_at_the_numproc_limit_names_ct_and_parameter() -> None:
    message = str(ForkLimit(8803, current=8, maximum=8).error("the command"))
    assert message.startswith("CT 8803: cannot start the command: the CT has reached its "
                              "process limit (numproc 8)")
    assert "vzctl set 8803 --numproc N" in message
    other = str(ForkLimit(8803, current=3, maximum=None).error("the CT's init"))
    assert "CT 8803" in other and "numproc" in other and "Errno" not in other


def test_errors_reach_the_user_without_class_names_or_errno() -> None:
    assert describe(BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")) == \
        "Resource temporarily unavailable"
    assert describe(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")) == \
        "No such file or directory: /x"
    assert describe(VzError("CT 1: broken")) == "CT 1: broken"
    assert "KeyError" not in describe(KeyError())
    error = PluginError("beancounters", "vz_pre_start", BlockingIOError(errno.EAGAIN, "Try again"))
    assert str(error) == "plugin 'beancounters' failed in vz_pre_start: Try again"


def test_an_unforeseen_error_is_one_line_without_its_class(capsys: pytest.CaptureFixture[str]) -> None:
    import click

    from vzcore.cli.main import run_cli

    @click.command()
    def broken() -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    assert run_cli(broken, "vzctl", []) == 3
    err = capsys.readouterr().err
    assert err.startswith("Error: Resource temporarily unavailable (unexpected;")
    assert len(err.strip().splitlines()) == 1 and "Errno" not in err and "BlockingIOError" not in err
