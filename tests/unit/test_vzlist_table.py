"""vzlist's table: object fields of a stopped CT and numbers wider than their column."""

from __future__ import annotations

import pytest

from vzcore.cli.vzlist import _column, _print_table
from vzcore.params import Field

FIELDS = {
    "ctid": Field(name="ctid", header="CTID", width=10, help="id"),
    "numproc": Field(name="numproc", header="NPROC", width=10, stopped=False, kind="ubc",
                     help="tasks"),
    "hostname": Field(name="hostname", header="HOSTNAME", width=-8, help="name"),
}
UNLIMITED = 2**63 - 1


def _table(capsys: pytest.CaptureFixture[str], names: list[str]) -> list[str]:
    counters = {"held": 0, "maxheld": 0, "barrier": 40, "limit": UNLIMITED, "failcnt": 0}
    rows = [
        {"ctid": 101, "status": "running", "hostname": "a-rather-long-name",
         "numproc": {**counters, "held": 7, "maxheld": 9}},
        {"ctid": 102, "status": "stopped", "hostname": "b", "numproc": counters},
    ]
    _print_table(rows, names, [_column(FIELDS, n) for n in names], False, True)
    return capsys.readouterr().out.splitlines()


def test_stopped_ct_prints_dash_for_usage_but_shows_settings(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _table(capsys, ["ctid", "numproc", "numproc.m", "numproc.b", "numproc.f", "hostname"])
    assert lines[1].split() == ["101", "7", "9", "40", "0", "a-rather-long-name"]
    assert lines[2].split() == ["102", "-", "-", "40", "-", "b"]


def test_numbers_are_not_cut_but_text_is(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _table(capsys, ["ctid", "hostname", "numproc.l"])
    assert lines[1].split() == ["101", "a-rather", str(UNLIMITED)]
