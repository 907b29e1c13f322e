"""Config text to barrier:limit pairs: grammar, defaults, VSwap's implicit values, errors."""

from __future__ import annotations

import pytest

from vzcore.errors import InvalidValue
from vzcore.values import Pair
from vzcore_beancounters.limits import Limits, from_config
from vzcore_beancounters.resources import RESOURCES, ROWS, UNLIMITED

HOST_PAGES = 1000


def limits(**config: str) -> Limits:
    return from_config(101, config.get, HOST_PAGES)


def test_there_are_21_beancounters_and_24_rows() -> None:
    assert len(RESOURCES) == 21
    assert len(ROWS) == 24
    assert ROWS.count("dummy") == 4
    assert set(ROWS) - {"dummy"} == {r.name for r in RESOURCES} - {"swappages"}


def test_defaults_are_openvz_s() -> None:
    got = limits()
    assert got["numproc"] == Pair(UNLIMITED, UNLIMITED)
    assert got["vmguarpages"] == Pair(0, UNLIMITED)
    assert got["oomguarpages"] == Pair(750, UNLIMITED)
    assert not got.vswap
    assert got.explicit == frozenset()


def test_units_and_suffixes() -> None:
    got = limits(NUMPROC="240:250", KMEMSIZE="14M:16M", PHYSPAGES="0:256M", SHMPAGES="21504",
                 NUMFILE="unlimited")
    assert got["numproc"] == Pair(240, 250)
    assert got["kmemsize"] == Pair(14 * 2**20, 16 * 2**20)
    assert got["physpages"] == Pair(0, 65536)  # pages
    assert got["shmpages"] == Pair(21504, 21504)
    assert got["numfile"] == Pair(UNLIMITED, UNLIMITED)


def test_old_alias_keys_are_read() -> None:
    got = limits(DCACHE="1000:2000", IPTENTRIES="64")
    assert got["dcachesize"] == Pair(1000, 2000)
    assert got["numiptent"] == Pair(64, 64)


def test_vswap_implicit_values() -> None:
    got = limits(PHYSPAGES="0:1000", SWAPPAGES="0:500", VM_OVERCOMMIT="1.5")
    assert got.vswap
    assert got["lockedpages"] == Pair(1000, UNLIMITED)
    assert got["oomguarpages"] == Pair(1000, UNLIMITED)
    assert got["vmguarpages"] == Pair(1500, 1500)
    assert got["privvmpages"] == Pair(2250, 2250)


def test_explicit_values_beat_implicit_ones() -> None:
    got = limits(PHYSPAGES="0:1000", LOCKEDPAGES="10:20")
    assert got["lockedpages"] == Pair(10, 20)
    assert got["privvmpages"] == Pair(UNLIMITED, UNLIMITED)  # no VM_OVERCOMMIT


@pytest.mark.parametrize(("key", "text", "words"), [
    ("NUMPROC", "50:40", "above limit"),
    ("NUMPROC", "-5", "not a number"),
    ("NUMPROC", "10K", "without a suffix"),
    ("KMEMSIZE", "12Q", "not a number"),
    ("PHYSPAGES", "1:2:3", "barrier[:limit]"),
    ("VM_OVERCOMMIT", "-1", "0 or more"),
])
def test_bad_config_values_name_ct_key_and_fix(key: str, text: str, words: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        limits(**{key: text})
    message = str(caught.value)
    assert "CT 101" in message and key in message and words in message
    assert "vzctl set 101 --" in message


def test_json_round_trip() -> None:
    got = limits(NUMPROC="40", PHYSPAGES="0:16384")
    again = Limits.from_json(got.to_json())
    assert all(again[name] == got[name] for name in got)


def test_a_live_change_starts_from_what_runs_not_from_the_file() -> None:
    from vzcore.changes import Change, ChangeSet
    from vzcore_beancounters.record import BeancountersRecord
    from vzcore_beancounters.settings import CONFIG_KEYS, running_config

    applied = dict.fromkeys(CONFIG_KEYS) | {"NUMPROC": "50", "PHYSPAGES": "0:1000"}
    record = BeancountersRecord(config=applied)
    other_key = ChangeSet({"HOSTNAME": Change("HOSTNAME", None, "web")})
    ct = type("Ct", (), {"ctid": 101})()
    got, text = running_config(ct, record, other_key)
    assert got["numproc"] == Pair(50, 50) and got["physpages"] == Pair(0, 1000)
    assert text == applied
    ram = ChangeSet({"PHYSPAGES": Change("PHYSPAGES", "0:1000", "0:2000")})
    got, text = running_config(ct, record, ram)
    assert got["numproc"] == Pair(50, 50)
    assert got["lockedpages"] == Pair(2000, UNLIMITED)  # implicit values follow the RAM
    assert text["PHYSPAGES"] == "0:2000"
