"""User-namespace ID maps and range allocation."""

import re

import pytest

from vzcore.idmap import RANGE, IdMap, MapError, allocate, format_ranges, parse_ranges


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


def test_the_kernels_most_ranges_are_taken() -> None:
    ranges = parse_ranges(" ".join(f"{i}:{i + 1}:1" for i in range(340)).replace("0:1:1", "0:1000:1"))
    assert len(ranges) == 340 and len(IdMap.of_ranges(ranges, ranges).uid_map()) < 4096


def test_a_general_map_of_several_ranges() -> None:
    """vzcore-oci's maps (OCI's linux.uidMappings): several ranges, any sizes."""
    uids = parse_ranges("0:200000:1 1:300001:1999")
    gids = parse_ranges("1:400001:2999 0:200000:1")
    idmap = IdMap.of_ranges(uids, gids)
    assert idmap.root == (200000, 200000)
    assert idmap.host_uid(1000) == 301000 and idmap.host_gid(5) == 400005
    assert idmap.uid_map() == "0 200000 1\n1 300001 1999\n"
    assert idmap.gid_map() == "1 400001 2999\n0 200000 1\n"  # as given: the kernel takes any order
    assert format_ranges(uids) == "0:200000:1 1:300001:1999"
    with pytest.raises(ValueError, match="outside the CT's IDs"):
        idmap.host_uid(2000)


@pytest.mark.parametrize(("text", "why"), [
    ("", "give 1 to 340"),
    (" ".join(f"{i}:{100000 + i}:1" for i in range(341)), "give 1 to 340"),
    (" ".join(f"{i}:{2000000000 + i}:1" for i in range(340)), "bytes as the kernel's map text"),
    ("0:100000:10 5:200000:10", "overlap in the container"),
    ("0:100000:10 10:100005:10", "overlap on the host"),
    ("1:100000:10", "ID 0 (the container's root) is not mapped"),
    ("0:100000:1 1:0:1", "host user ID 0"),
    ("0:100000:0", "is empty"),
    ("0:4294967290:10", "not within"),
    ("0-100000-1", "is not INSIDE:HOST:COUNT"),
])
def test_a_map_the_kernel_or_vzcore_would_not_take_is_refused(text: str, why: str) -> None:
    with pytest.raises(MapError, match=re.escape(why)):
        parse_ranges(text)
