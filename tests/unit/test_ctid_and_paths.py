"""CT IDs and where things live."""

from pathlib import Path

import pytest

from vzcore.conffile import ConfigFile
from vzcore.container import Container, parse_ctid
from vzcore.errors import InvalidSyntax
from vzcore.paths import Paths, expand_veid


@pytest.mark.parametrize("text", ["abc", "-1", "10.5", "", "99999999999", "1e3"])
def test_malformed_ctids_are_refused(text: str) -> None:
    with pytest.raises(InvalidSyntax) as info:
        parse_ctid(text)
    assert info.value.exit_code == 20


def test_ctid() -> None:
    assert parse_ctid("101") == 101


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
