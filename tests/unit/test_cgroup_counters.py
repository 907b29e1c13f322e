"""Reading counters and writing limits through CgroupSet, on a fake v1 and v2 tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from vzcore.linux.cgroups import UNLIMITED, CgroupDir, CgroupSet, parse_number


def _v1(tmp_path: Path) -> CgroupSet:
    tmp_path.mkdir(exist_ok=True)
    memory = tmp_path / "memory"
    pids = tmp_path / "pids"
    memory.mkdir()
    pids.mkdir()
    return CgroupSet((CgroupDir("memory", 1, frozenset({"memory"}), memory),
                      CgroupDir("pids", 1, frozenset({"pids"}), pids)))


def _v2(tmp_path: Path) -> CgroupSet:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    group = tmp_path / "ct"
    group.mkdir()
    return CgroupSet((CgroupDir("unified", 2, frozenset(), group),))


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("4096", 4096), ("max", UNLIMITED), ("9223372036854771712", UNLIMITED),
])
def test_parse_number(text: str, value: int) -> None:
    assert parse_number(text) == value


def test_parse_number_refuses_words() -> None:
    with pytest.raises(ValueError):
        parse_number("lots")


def test_read_int_and_keyed(tmp_path: Path) -> None:
    cg = _v1(tmp_path)
    (tmp_path / "memory/memory.usage_in_bytes").write_text("12288\n")
    (tmp_path / "memory/memory.stat").write_text("cache 4096\nrss 8192\nweird line here\n")
    (tmp_path / "pids/pids.events").write_text("max 3\n")
    assert cg.read_int("memory", "memory.usage_in_bytes") == 12288
    assert cg.read_keyed("memory", "memory.stat") == {"cache": 4096, "rss": 8192}
    assert cg.read_keyed("pids", "pids.events") == {"max": 3}
    assert cg.read_int("memory", "memory.peak") is None
    assert cg.read_keyed("memory", "memory.events") == {}
    assert cg.try_read("cpu", "cpu.shares") is None
    assert cg.has_file("memory", "memory.stat")
    assert not cg.has_file("memory", "memory.peak")


def test_write_limit_spells_unlimited_per_version(tmp_path: Path) -> None:
    v1 = _v1(tmp_path / "a")
    for name in ("memory/memory.limit_in_bytes", "pids/pids.max"):
        (tmp_path / "a" / name).touch()
    v1.write_limit("memory", "memory.limit_in_bytes", None)
    v1.write_limit("pids", "pids.max", None)
    assert (tmp_path / "a/memory/memory.limit_in_bytes").read_text() == "-1"
    assert (tmp_path / "a/pids/pids.max").read_text() == "max"
    v2 = _v2(tmp_path / "b")
    (tmp_path / "b/ct/memory.max").touch()
    v2.write_limit("memory", "memory.max", None)
    assert (tmp_path / "b/ct/memory.max").read_text() == "max"
    v2.write_limit("memory", "memory.max", 65536)
    assert (tmp_path / "b/ct/memory.max").read_text() == "65536"
