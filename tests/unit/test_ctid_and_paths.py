"""CT IDs and where things live."""

from pathlib import Path

import pytest

from vzcore.conffile import ConfigFile
from vzcore.container import Container, ctid_of_file, parse_ctid
from vzcore.engine import Engine
from vzcore.errors import InvalidSyntax
from vzcore.paths import Paths, expand_veid

NOT_CANONICAL = ["abc", "-1", "+101", "10.5", "", "99999999999", "1e3", " 101", "101 ", "\t101",
                 "101\n", "0101", "08808", "00", "\uff10\uff18\uff18\uff11", "\u0661\u0660\u0661",
                 "1_01", "2147483645"]


@pytest.mark.parametrize("text", NOT_CANONICAL)
def test_malformed_ctids_are_refused(text: str) -> None:
    with pytest.raises(InvalidSyntax) as info:
        parse_ctid(text)
    assert info.value.exit_code == 20
    assert repr(text) in info.value.message and "\n" not in info.value.message


def test_ctid() -> None:
    assert parse_ctid("101") == 101
    assert parse_ctid("0") == 0
    assert parse_ctid("2147483644") == 2147483644


@pytest.mark.parametrize("text", NOT_CANONICAL)
def test_files_with_non_canonical_names_are_no_cts(text: str) -> None:
    assert ctid_of_file(f"{text}.conf", ".conf") is None


def test_ctid_of_file() -> None:
    assert ctid_of_file("101.conf", ".conf") == 101
    assert ctid_of_file("101.json", ".json") == 101
    for name in ("0.conf", "101.conf.destroyed", "ve-basic.conf-sample", "101.json", ".conf"):
        assert ctid_of_file(name, ".conf") is None


def test_engine_lists_only_canonical_config_names(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc/vz/conf"
    conf_dir.mkdir(parents=True)
    for name in ("101.conf", "0102.conf", " 103.conf", "\uff11\uff10\uff14.conf", "105.conf.destroyed",
                 "106 .conf", "107.conf"):
        (conf_dir / name).write_text("")
    assert Engine(Paths(tmp_path)).ctids() == [101, 107]


def test_vz_root_relocates_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VZ_ROOT", "/tmp/x")
    paths = Paths.from_environment()
    assert paths.ct_conf(101) == Path("/tmp/x/etc/vz/conf/101.conf")
    assert paths.vz_conf == Path("/tmp/x/etc/vz/vz.conf")
    assert paths.state_file(101) == Path("/tmp/x/run/vz/101.json")


def test_default_paths_are_openvz_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VZ_ROOT", raising=False)
    ct = Container(101, Paths.from_environment(), ConfigFile(Path("/nonexistent/vz.conf")),
                   ConfigFile(Path("/nonexistent/101.conf")))
    assert ct.private == Path("/vz/private/101")
    assert ct.root == Path("/vz/root/101")
    assert ct.layout == "simfs"


def test_ct_config_overrides_vz_conf_defaults(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    global_conf = ConfigFile(tmp_path / "vz.conf", ['VE_PRIVATE="/data/$VEID"', "ONBOOT=yes"])
    ct = Container(202, paths, global_conf, ConfigFile(tmp_path / "202.conf", ["ONBOOT=no"]))
    assert ct.private == tmp_path / "data/202"
    assert ct.get("ONBOOT") == "no"


def test_expand_veid_forms() -> None:
    assert expand_veid("/a/$VEID/${VEID}/$CTID", 7) == "/a/7/7/7"
