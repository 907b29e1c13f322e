"""The pure checks of VE_PRIVATE / VE_ROOT paths (vzcore.areas)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vzcore import areas


@pytest.mark.parametrize(("text", "clean"), [
    ("/vz/private/101", "/vz/private/101"),
    ("//vz//private/./101/", "/vz/private/101"),
    ("/", "/"),
    ("vz/private/101", None),
    ("", None),
    ("/vz/private/../../etc", None),
    ("/vz/private/101/..", None),
    ("/vz/pri\0vate", None),
])
def test_normalize(text: str, clean: str | None) -> None:
    assert areas.normalize(text) == clean


@pytest.mark.parametrize(("pattern", "base"), [
    ("/vz/private/$VEID", "/vz/private"),
    ("/vz/private/${VEID}", "/vz/private"),
    ("/vz/$VEID/private", "/vz"),
    ("/data/vz/ct-$CTID.d", "/data/vz"),
    ("/data/ct", "/data"),
    ("/$VEID", "/"),
    ("relative/$VEID", None),
])
def test_fixed_base(pattern: str, base: str | None) -> None:
    assert areas.fixed_base(pattern) == base


@pytest.mark.parametrize(("pattern", "path", "ctid"), [
    ("/vz/private/$VEID", "/vz/private/101", 101),
    ("/vz/private/$VEID", "/vz/private/101/", 101),
    ("/vz/private/$VEID", "/vz/private/0101", None),
    ("/vz/private/$VEID", "/vz/private/101/x", None),
    ("/vz/private/$VEID", "/vz/private/x101", None),
    ("/vz/${VEID}/p/$VEID", "/vz/7/p/7", 7),
    ("/vz/${VEID}/p/$VEID", "/vz/7/p/8", None),
    ("/vz/private/ct$VEID.d", "/vz/private/ct5.d", 5),
    ("/vz/private/fixed", "/vz/private/fixed", None),
])
def test_pattern_ctid(pattern: str, path: str, ctid: int | None) -> None:
    assert areas.pattern_ctid(pattern, path) == ctid


@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/usr/lib", "/var", "/var/lib", "/home",
                                  "/root", "/lib", "/lib64", "/libx32", "/boot", "/proc", "/sys",
                                  "/dev", "/run", "/tmp", "/sbin", "/bin", "/etc/vz"])
def test_system_directories(path: str) -> None:
    assert areas.is_system_dir(path)


@pytest.mark.parametrize("path", ["/vz", "/vz/private/101", "/var/lib/vz", "/tmp/x", "/srv/ct"])
def test_not_system_directories(path: str) -> None:
    assert not areas.is_system_dir(path)


def test_within_and_overlap_compare_whole_components() -> None:
    assert areas.is_within("/vz/private/101", "/vz/private")
    assert areas.is_within("/vz/private", "/vz/private")
    assert not areas.is_within("/vz/private101", "/vz/private")
    assert areas.is_within("/anything", "/")
    assert areas.overlaps("/vz/private", "/vz/private/101")
    assert areas.overlaps("/vz/private/101", "/vz/private")
    assert not areas.overlaps("/vz/private/101", "/vz/private/1010")


@pytest.mark.parametrize(("text", "fragment"), [
    ("/etc", "system directory"),
    ("/", "system directory"),
    ("/usr", "system directory"),
    ("/lib64", "system directory"),
    ("etc", "absolute"),
    ("/vz/private/../../etc", "'..'"),
    ("/vz/private", "does not lie below /vz/private"),
    ("/vz", "does not lie below /vz/private"),
    ("/vz/private101", "does not lie below /vz/private"),
    ("/etc/vz/conf/x", "does not lie below /vz/private"),
])
def test_config_problems(text: str, fragment: str) -> None:
    problem = areas.config_problem(text, ["/vz/private"])
    assert problem is not None and fragment in problem


def test_config_paths_below_the_base_are_accepted() -> None:
    assert areas.config_problem("/vz/private/101", ["/vz/private"]) is None
    assert areas.config_problem("/vz/private/custom/101", ["/vz/private"]) is None
    assert areas.config_problem("//vz/private/101/", ["/vz/private"]) is None
    assert areas.config_problem("/vz/private/101", ["/srv/vz", "/vz/private"]) is None
    assert areas.config_problem("/srv/vz/101", ["/srv/vz", "/vz/private"]) is None
    problem = areas.config_problem("/data/101", ["/srv/vz", "/vz/private"])
    assert problem is not None and "/srv/vz or /vz/private" in problem


def test_a_pattern_without_a_fixed_base_accepts_nothing() -> None:
    problem = areas.config_problem("/101", ["/"])
    assert problem is not None and "no fixed base" in problem
    assert areas.config_problem("/vz/private/101", [None]) is not None


@pytest.mark.parametrize(("host", "fragment"), [
    ("/etc", "system directory /etc"),
    ("/", "system directory /"),
    ("/data", "holds the whole installation"),
    ("/data/vz", "holds the whole installation"),
    ("/data/vz/etc/vz/conf", "vzcore's own directory"),
    ("/data/vz/etc/vz/conf/sub", "vzcore's own directory"),
    ("/data/vz/run/vz", "vzcore's own directory"),
])
def test_host_problems(host: str, fragment: str) -> None:
    own = ["/data/vz/etc/vz", "/data/vz/etc/vz/conf", "/data/vz/run/vz"]
    problem = areas.host_problem(host, "/data/vz", own)
    assert problem is not None and fragment in problem


def test_host_paths_of_a_ct_are_accepted() -> None:
    assert areas.host_problem("/data/vz/vz/private/101", "/data/vz", ["/data/vz/etc/vz"]) is None
    assert areas.host_problem("/vz/private/101", "/", ["/etc/vz", "/run/vz"]) is None


def test_marker_round_trip_and_absence(tmp_path: Path) -> None:
    area = tmp_path / "101"
    area.mkdir()
    assert areas.read_marker(area) is None
    assert areas.read_marker(tmp_path / "missing") is None
    if os.geteuid() != 0:
        pytest.skip("trusted.* attributes need CAP_SYS_ADMIN (root)")
    assert areas.write_marker(area, 101)
    assert areas.read_marker(area) == "101"


def test_is_empty_dir(tmp_path: Path) -> None:
    assert areas.is_empty_dir(tmp_path)
    (tmp_path / "f").write_text("x")
    assert not areas.is_empty_dir(tmp_path)
    assert not areas.is_empty_dir(tmp_path / "f")
    assert not areas.is_empty_dir(tmp_path / "missing")
