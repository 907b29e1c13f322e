"""The pure translation of cpuunits, cpulimit, cpus and cpumask (no root, no kernel)."""

from __future__ import annotations

import pytest

from vzcore_cpu import mapping
from vzcore_cpu.grammar import CpuLimit, CpuMask, SettingError, settings_of, texts_of
from vzcore_cpu.mapping import CpuSettings


def test_cpuunits_map_to_the_kernels_default_weight_at_1000() -> None:
    assert mapping.shares(1000) == 1024
    assert mapping.weight(1000) == 100
    assert mapping.shares(3000) == 3 * mapping.shares(1000)
    assert mapping.weight(3000) == 3 * mapping.weight(1000)
    # The ends of OpenVZ's 8..500000 range are clamped to what the kernel accepts.
    assert (mapping.shares(8), mapping.shares(500000)) == (8, 262144)
    assert (mapping.weight(8), mapping.weight(500000)) == (1, 10000)


def test_cpulimit_is_percent_of_one_cpu_and_cpus_caps_it() -> None:
    assert mapping.quota_us(CpuSettings()) is None
    assert mapping.quota_us(CpuSettings(limit=25)) == 25_000
    assert mapping.quota_us(CpuSettings(limit=150)) == 150_000
    assert mapping.quota_us(CpuSettings(cpus=2)) == 200_000
    assert mapping.quota_us(CpuSettings(limit=300, cpus=2)) == 200_000
    assert mapping.quota_us(CpuSettings(limit=50, cpus=2)) == 50_000
    assert mapping.quota_us(CpuSettings(limit=1)) == 1000  # the kernel's minimum quota


def test_cgroup_files_for_v1_and_v2() -> None:
    settings = CpuSettings(units=3000, limit=150)
    assert mapping.cpu_files(settings, 1) == [
        ("cpu.shares", "3072"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "150000")]
    assert mapping.cpu_files(settings, 2) == [("cpu.weight", "300"), ("cpu.max", "150000 100000")]
    assert mapping.cpu_files(CpuSettings(), 1)[-1] == ("cpu.cfs_quota_us", "-1")
    assert mapping.cpu_files(CpuSettings(), 2)[-1] == ("cpu.max", "max 100000")


def test_cpuset_choice() -> None:
    available = [0, 1, 2, 3]
    assert mapping.chosen_cpus(CpuSettings(), available, 101) is None
    assert mapping.chosen_cpus(CpuSettings(cpus=4), available, 101) is None
    assert mapping.chosen_cpus(CpuSettings(cpus=9), available, 101) is None
    # N CPUs, consecutive from CTID modulo the count, so CTs spread over the host.
    assert mapping.chosen_cpus(CpuSettings(cpus=2), available, 101) == {1, 2}
    assert mapping.chosen_cpus(CpuSettings(cpus=2), available, 103) == {3, 0}
    assert mapping.chosen_cpus(CpuSettings(cpus=1), available, 104) == {0}
    # An explicit mask wins over the count (the count still caps the quota).
    assert mapping.chosen_cpus(CpuSettings(cpus=1, mask=frozenset({2, 3})), available, 101) == {2, 3}


def test_parent_weight_makes_the_host_count_as_ve0cpuunits() -> None:
    # Two CTs of 1000 and 3000 against a host of 1000: the CTs weigh 4 times the host,
    # whose default-weight competitor is 1024 shares (v1) or weight 100 (v2).
    assert mapping.parent_weight([1024, 3072], 1000, 1) == 4096
    assert mapping.parent_weight([100, 300], 1000, 2) == 400
    assert mapping.parent_weight([1024, 3072], 4000, 1) == 1024
    assert mapping.parent_weight([1024], 8, 1) == 128000
    assert mapping.parent_weight([100], 8, 2) == 10000  # clamped
    assert mapping.parent_weight([], 1000, 1) is None


def test_cpu_lists() -> None:
    assert mapping.parse_cpulist("0-2,7\n") == {0, 1, 2, 7}
    assert mapping.parse_cpulist("") == frozenset()
    assert mapping.format_cpulist({7, 0, 2, 1, 9, 10}) == "0-2,7,9-10"
    assert mapping.format_cpulist([3]) == "3"
    for bad in ("a", "1-", "-1", "3-1", "0,,1", "9000"):
        with pytest.raises(ValueError):
            mapping.parse_cpulist(bad)


CPUINFO = "".join(f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu MHz\t\t: 2000.0\n\n" for n in range(4))


def test_cpuinfo_keeps_only_the_cts_cpus() -> None:
    shown = mapping.filter_cpuinfo(CPUINFO, {1, 3})
    assert [line for line in shown.splitlines() if line.startswith("processor")] == [
        "processor\t: 1", "processor\t: 3"]
    assert shown.endswith("2000.0\n\n")
    assert mapping.filter_cpuinfo("vendor_id : IBM/S390\n# processors : 4\n", {0}) == \
        "vendor_id : IBM/S390\n# processors : 4\n"


def test_counters() -> None:
    text = ("some avg10=12.50 avg60=3.00 avg300=0.75 total=123\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    assert mapping.parse_pressure(text) == (12.5, 3.0, 0.75)
    assert mapping.parse_pressure("") is None
    assert mapping.usage_seconds("1500000000\n", 1) == 1.5
    assert mapping.usage_seconds("usage_usec 2500000\nuser_usec 1\n", 2) == 2.5


def test_cpulimit_grammar() -> None:
    two = CpuLimit(host_cpus=lambda: 2)
    assert two.parse("25") == 25
    assert two.parse("0") == 0
    assert two.parse("50%") == 100  # half of a two-CPU host, stored as vzctl stores it
    assert two.parse("100%") == 200
    for bad in ("101%", "-5", "1.5", "x", "5 %"):
        with pytest.raises(ValueError):
            two.parse(bad)


def test_cpumask_grammar() -> None:
    assert CpuMask().parse("all") is None
    assert CpuMask().parse("1,0") == {0, 1}
    assert CpuMask().to_conf(frozenset({0, 1, 3})) == "0-1,3"
    assert CpuMask().to_conf(None) == "all"
    with pytest.raises(ValueError, match="no CPU"):
        CpuMask().parse(" ")


def test_settings_from_config_text() -> None:
    config = {"CPUUNITS": "3000", "CPULIMIT": "50%", "CPUS": "1", "CPUMASK": "0-1"}
    settings = settings_of(config.get, host_cpus=lambda: 4)
    assert settings == CpuSettings(units=3000, limit=200, cpus=1, mask=frozenset({0, 1}))
    assert settings_of({}.get) == CpuSettings()
    assert settings_of(texts_of(settings).get) == settings
    assert CpuSettings.from_record(settings.to_record()) == settings
    with pytest.raises(SettingError, match=r"CPUUNITS='7': 7 is outside") as caught:
        settings_of({"CPUUNITS": "7"}.get)
    assert caught.value.key == "CPUUNITS"
