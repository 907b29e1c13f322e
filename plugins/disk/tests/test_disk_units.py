"""The disk plugin's pure parts: limits, the soft limit's grace, vzquota stat's layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from vzcore.values import LONG_MAX
from vzcore_disk import grace, limits, report
from vzcore_disk.image import Usage


def test_diskspace_takes_suffixes_in_1k_blocks() -> None:
    pair = limits.DISKSPACE.parse("100M:120M")
    assert (pair.soft, pair.hard) == (102400, 122880)
    assert limits.DISKSPACE.parse("1G").hard == 1048576
    assert limits.DISKSPACE.parse("2T").soft == 2 * 1024**3


@pytest.mark.parametrize("text", ["120M:100M", "1x", "", "1:2:3"])
def test_bad_diskspace_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        limits.DISKSPACE.parse(text)


def test_diskinodes_is_a_plain_count() -> None:
    assert limits.DISKINODES.parse("20000:22000").hard == 22000
    with pytest.raises(ValueError):
        limits.DISKINODES.parse("20K")


LIMITS = limits.Limits(space_soft=100, space_hard=200, inodes_soft=10, inodes_hard=20,
                       quotatime=60)


def usage(blocks: int, inodes: int = 1) -> Usage:
    return Usage(blocks, 200, inodes, 20)


def test_grace_starts_when_use_first_seen_above_soft() -> None:
    state = grace.next_state(grace.Grace(), usage(150), LIMITS, now=1000)
    assert state == grace.Grace(space_since=1000, enforced=False)
    later = grace.next_state(state, usage(160), LIMITS, now=1050)
    assert later.space_since == 1000 and not later.enforced
    assert grace.remaining(later.space_since, 60, now=1050) == 10


def test_soft_acts_as_hard_once_grace_is_over() -> None:
    state = grace.next_state(grace.Grace(space_since=1000), usage(150), LIMITS, now=1060)
    assert state.enforced
    assert grace.remaining(state.space_since, 60, now=1060) == 0
    assert grace.reserve_kblocks(LIMITS, 200) == 100


def test_back_under_soft_resets_the_grace() -> None:
    state = grace.next_state(grace.Grace(space_since=1000, enforced=True), usage(90), LIMITS,
                             now=2000)
    assert state == grace.Grace()


def test_reserve_is_at_most_half_the_file_system() -> None:
    wide = limits.Limits(space_soft=10, space_hard=200)
    assert grace.reserve_kblocks(wide, 200) == 100


def test_inodes_over_soft_are_reported_not_enforced() -> None:
    state = grace.next_state(grace.Grace(), usage(10, inodes=15), LIMITS, now=5)
    assert state.inodes_since == 5 and not state.enforced


def test_stat_text_is_vzquota_stat() -> None:
    table = [report.Row("1k-blocks", 123456, 102400, 122880, 0),
             report.Row("inodes", 316, 20000, 22000, None)]
    assert report.stat_text(table) == (
        "   resource          usage       softlimit      hardlimit    grace\n"
        "  1k-blocks        123456*          102400         122880     none\n"
        "     inodes            316           20000          22000\n")


def test_unlimited_shows_as_vzquota_does() -> None:
    text = report.stat_text([report.Row("1k-blocks", None, LONG_MAX, LONG_MAX, None)])
    assert text.splitlines()[1].split() == ["1k-blocks", "-", "unlimited", "unlimited"]


class _Paths:
    def host(self, text: str) -> Path:
        return Path(text)


class _BtrfsCt:
    """What btrfs_area reads of a CT: its ID, private area and config values."""

    def __init__(self, private: Path, config: dict[str, str]) -> None:
        self.ctid, self.private, self.paths, self.layout = 101, private, _Paths(), "btrfs"
        self._config = config

    def get(self, key: str) -> str | None:
        return self._config.get(key)


def test_btrfs_start_path_reads_the_qgroup_only(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """The mount and start path (enforce) and vzlist without diskinodes never walk the
    subvolume; vzctl quota and vzlist's diskinodes do."""
    from vzcore_disk import btrfs, btrfs_area

    walked: list[Path] = []

    def count_inodes(root: Path) -> int:
        walked.append(root)
        return 123

    monkeypatch.setattr(btrfs, "referenced_kblocks", lambda pool, ctid: (4096, 51200))
    monkeypatch.setattr(btrfs, "count_inodes", count_inodes)
    monkeypatch.setattr(btrfs, "set_limit", lambda ctid, pool, kblocks: None)
    ct = _BtrfsCt(tmp_path, {"BTRFS_POOL": "/pool", "DISKSPACE": "50M:50M",
                             "DISKINODES": "100:200"})
    btrfs_area.enforce(ct)
    assert walked == []
    assert report.fields(ct, {"diskspace"}) == {
        "diskspace": {"usage": 4096, "softlimit": 51200, "hardlimit": 51200}}
    assert walked == []
    inodes = report.fields(ct, {"diskinodes"})["diskinodes"]
    assert inodes["usage"] == 123 and walked == [Path("/pool/101")]
