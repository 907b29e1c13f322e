"""User-namespace ID maps and range allocation."""

import pytest

from vzcore.idmap import RANGE, IdMap, allocate


def test_mapping() -> None:
    idmap = IdMap(200000, 300000)
    assert idmap.host_uid(0) == 200000
    assert idmap.host_gid(5) == 300005
    assert idmap.uid_map() == "0 200000 65536\n"
    assert idmap.root == (200000, 300000)
    with pytest.raises(ValueError, match="outside the CT's IDs"):
        idmap.host_uid(65536)


def test_allocation_skips_taken_and_overlapping_ranges() -> None:
    assert allocate(100000, []) == 100000
    assert allocate(100000, [100000]) == 100000 + RANGE
    assert allocate(100000, [100000, 100000 + RANGE]) == 100000 + 2 * RANGE
    assert allocate(100000, [100000 + 100]) == 100000 + 2 * RANGE  # overlaps two slots
    assert allocate(100000, [100000 + 2 * RANGE]) == 100000


def test_privileged_root_is_refused_as_a_map() -> None:
    with pytest.raises(ValueError):
        IdMap(0, 0)
