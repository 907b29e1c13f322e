"""Value grammars of vzctl options."""

import pytest

from vzcore.values import HOSTNAME, LONG_MAX, Integer, Pair, PairOf, Size, YesNo

BYTES = Size(1)
PAGES = Size(4096)
ITEMS = Size(0)


@pytest.mark.parametrize(("text", "expected"), [
    ("1024", 1024), ("1K", 1024), ("1k", 1024), ("2M", 2 << 20), ("1.5G", 3 << 29),
    ("1T", 1 << 40), ("3P", 3 * 4096), ("7B", 7), ("unlimited", LONG_MAX),
])
def test_byte_sizes(text: str, expected: int) -> None:
    assert BYTES.parse(text) == expected


def test_page_sizes_convert_suffixes_to_pages() -> None:
    assert PAGES.parse("256M") == 65536
    assert PAGES.parse("100") == 100


@pytest.mark.parametrize("text", ["1K", "1.5", "-1", "abc", "", "1KB"])
def test_counts_take_no_suffix(text: str) -> None:
    with pytest.raises(ValueError):
        ITEMS.parse(text)


def test_fraction_needs_a_suffix() -> None:
    with pytest.raises(ValueError, match="suffix"):
        BYTES.parse("1.5")


def test_values_above_long_max_are_capped() -> None:
    assert BYTES.parse("99999999999999999999T") == LONG_MAX


def test_pair_grammar() -> None:
    pair = PairOf(ITEMS)
    assert pair.parse("40") == Pair(40, 40)
    assert pair.parse("40:50") == Pair(40, 50)
    assert pair.parse("10:unlimited") == Pair(10, LONG_MAX)
    assert pair.to_conf(Pair(10, LONG_MAX)) == "10:unlimited"
    with pytest.raises(ValueError, match="barrier 50 is above limit 40"):
        pair.parse("50:40")
    for bad in ("1:2:3", ":5", "5:"):
        with pytest.raises(ValueError):
            pair.parse(bad)


def test_soft_hard_names_appear_in_errors() -> None:
    with pytest.raises(ValueError, match="soft 2G is above hard 1G"):
        PairOf(Size(1024), ("soft", "hard")).parse("2G:1G")


def test_integer_range() -> None:
    assert Integer(8, 500000).parse("1000") == 1000
    with pytest.raises(ValueError, match=r"outside 8\.\.500000"):
        Integer(8, 500000).parse("7")


def test_yes_no() -> None:
    assert YesNo().parse("yes") is True
    assert YesNo().parse("no") is False
    with pytest.raises(ValueError):
        YesNo().parse("maybe")


@pytest.mark.parametrize("name", ["ct101", "web-1.example.com", "a", "x" * 60 + ".abc", "9.example."])
def test_good_hostnames(name: str) -> None:
    assert HOSTNAME.parse(name) == name


@pytest.mark.parametrize("name", ["bad name", "-lead", "trail-", "a..b", "x" * 64, "a\nb",
                                  "x" * 61 + ".abc", "a_b", "web.-x", "ct;reboot", ""])
def test_bad_hostnames(name: str) -> None:
    with pytest.raises(ValueError):
        HOSTNAME.parse(name)
