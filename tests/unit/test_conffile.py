"""OpenVZ config files: parsing, round trips that keep comments and unknown keys."""

from pathlib import Path

import pytest

from vzcore.conffile import ConfigFile, quote
from vzcore.errors import ConfigError

SAMPLE = """\
# Global parameters
VIRTUOZZO=yes
LOCKDIR=/vz/lock

## Defaults for containers
VE_ROOT="/vz/root/$VEID"
NAMESERVER='8.8.8.8 8.8.4.4'
IP_ADDRESS="10.0.0.1 10.0.0.2" # two addresses
SOMETHING_UNKNOWN="kept as it is"
if [ -n "$X" ]; then echo hi; fi
"""


def test_parses_bare_quoted_and_single_quoted_values(tmp_path: Path) -> None:
    path = tmp_path / "vz.conf"
    path.write_text(SAMPLE)
    conf = ConfigFile.load(path)
    assert conf["VIRTUOZZO"] == "yes"
    assert conf["VE_ROOT"] == "/vz/root/$VEID"
    assert conf["NAMESERVER"] == "8.8.8.8 8.8.4.4"
    assert conf["IP_ADDRESS"] == "10.0.0.1 10.0.0.2"
    assert "X" not in conf


def test_rewrite_changes_only_the_changed_lines(tmp_path: Path) -> None:
    path = tmp_path / "101.conf"
    path.write_text(SAMPLE)
    conf = ConfigFile.load(path)
    conf.set("LOCKDIR", "/var/lock/vz")
    conf.set("NEW_KEY", 'with "quotes" and $VEID')
    conf.set("NAMESERVER", None)
    conf.save()
    text = path.read_text()
    assert text.splitlines()[2] == 'LOCKDIR="/var/lock/vz"'
    assert "# Global parameters" in text and "## Defaults for containers" in text
    assert 'SOMETHING_UNKNOWN="kept as it is"' in text
    assert 'if [ -n "$X" ]; then echo hi; fi' in text
    assert "NAMESERVER" not in text
    assert text.endswith('NEW_KEY="with \\"quotes\\" and $VEID"\n')
    again = ConfigFile.load(path)
    assert again["NEW_KEY"] == 'with "quotes" and $VEID'
    assert again["IP_ADDRESS"] == "10.0.0.1 10.0.0.2"


def test_removing_a_key_keeps_the_line_numbers_of_others_right(tmp_path: Path) -> None:
    conf = ConfigFile(tmp_path / "c.conf", ["A=1", "B=2", "C=3"])
    conf.set("A", None)
    conf.set("C", "33")
    assert conf.text() == 'B=2\nC="33"\n'


def test_unterminated_quote_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text('A="x\n')
    with pytest.raises(ConfigError, match=r"bad\.conf:1"):
        ConfigFile.load(path)


def test_quote_leaves_dollar_for_the_shell() -> None:
    assert quote("/vz/root/$VEID") == '"/vz/root/$VEID"'
    assert quote('a"b\\c`d') == '"a\\"b\\\\c\\`d"'


def test_save_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "101.conf"
    path.write_text("A=1\n")
    path.chmod(0o600)
    conf = ConfigFile.load(path)
    conf.set("A", "2")
    conf.save()
    assert path.read_text() == 'A="2"\n'
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*tmp"))
