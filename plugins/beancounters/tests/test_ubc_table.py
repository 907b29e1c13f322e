"""The /proc/user_beancounters layout, column for column, and the JSON form."""

from __future__ import annotations

import json

from vzcore_beancounters.counters import Usage
from vzcore_beancounters.limits import from_config
from vzcore_beancounters.resources import RESOURCES, ROWS, UNLIMITED
from vzcore_beancounters.table import Row, as_json, proc_size, proc_text, rows

# Reference §5.1, as the kernel prints it (head_fmt "%10s  %-12s %20s %20s %20s %20s %20s").
HEADER = ("       uid  resource                     held              maxheld              barrier"
          "                limit              failcnt")
FIRST = ("      101:  kmemsize                 17465748             19181568  9223372036854775807"
         "  9223372036854775807                    0")


def _limits() -> object:
    return from_config(101, {"NUMPROC": "240:240", "LOCKEDPAGES": "180224"}.get, 1000)


def test_header_and_first_row_match_the_reference_to_the_column() -> None:
    usage = {r.name: Usage() for r in RESOURCES}
    usage["kmemsize"] = Usage(17465748, 19181568)
    text = proc_text([(101, rows(_limits(), usage))])  # type: ignore[arg-type]
    lines = text.splitlines()
    assert lines[0] == "Version: 2.5"
    assert lines[1] == HEADER
    assert lines[2] == FIRST
    assert lines[3].split() == ["lockedpages", "0", "0", "180224", "180224", "0"]
    assert lines[3].startswith(" " * 12 + "lockedpages ")
    assert len({len(line) for line in lines[1:]}) == 1  # every row as wide as the header
    assert text.endswith("\n")


def test_rows_come_in_kernel_order_with_dummies_and_without_swappages() -> None:
    text = proc_text([(101, rows(_limits(), None)), (102, rows(_limits(), None))])  # type: ignore[arg-type]
    names = [line[12:24].strip() for line in text.splitlines()[2:]]
    assert names == list(ROWS) * 2
    dummy = next(line for line in text.splitlines() if "dummy" in line).split()
    assert dummy == ["dummy", "0", "0", str(UNLIMITED), str(UNLIMITED), "0"]
    assert "      102:  kmemsize" in text
    assert "swappages" not in text


def test_maxheld_is_the_highest_of_kernel_peak_observed_peak_and_held() -> None:
    usage = {r.name: Usage() for r in RESOURCES}
    usage["numproc"] = Usage(held=7, maxheld=9, failcnt=2)
    usage["numfile"] = Usage(held=30)
    table = rows(_limits(), usage, {"numfile": 45, "numtcpsock": 3})  # type: ignore[arg-type]
    assert table["numproc"] == Row(7, 9, 240, 240, 2)
    assert table["numfile"].maxheld == 45
    assert table["numtcpsock"].maxheld == 3


def test_stopped_ct_shows_settings_with_zero_usage() -> None:
    table = rows(_limits(), None)  # type: ignore[arg-type]
    assert table["numproc"] == Row(0, 0, 240, 240, 0)


def test_size_is_known_without_rendering() -> None:
    usage = {r.name: Usage(held=123456789, maxheld=UNLIMITED, failcnt=5) for r in RESOURCES}
    for ctid in (101, 2147483644):
        assert proc_size(ctid) == len(proc_text([(ctid, rows(_limits(), usage))]).encode())  # type: ignore[arg-type]


def test_json_has_every_beancounter_with_five_numbers() -> None:
    data = json.loads(as_json([(101, rows(_limits(), None))]))  # type: ignore[arg-type]
    assert data[0]["ctid"] == 101
    assert set(data[0]) == {"ctid"} | {r.name for r in RESOURCES}
    assert data[0]["numproc"] == {"held": 0, "maxheld": 0, "barrier": 240, "limit": 240,
                                  "failcnt": 0}
