"""Which scripts a moment runs, in which order, and which files are refused (no root)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vzcore.conffile import ConfigFile
from vzcore.container import Container
from vzcore.errors import ActionScriptError
from vzcore.paths import Paths
from vzcore_actions import scripts


@pytest.fixture
def ct(tmp_path: Path) -> Container:
    paths = Paths(tmp_path)
    paths.conf_dir.mkdir(parents=True)
    return Container.load(101, paths, ConfigFile.load(paths.vz_conf, missing_ok=True))


def test_global_scripts_first_and_only_on_the_host() -> None:
    class Fake:
        ctid = 101

    assert scripts.names(Fake(), "premount") == ["vps.premount", "101.premount"]  # type: ignore[arg-type]
    assert scripts.names(Fake(), "postumount") == ["vps.postumount", "101.postumount"]  # type: ignore[arg-type]
    assert scripts.names(Fake(), "start") == ["101.start"]  # type: ignore[arg-type]
    assert scripts.names(Fake(), "stop") == ["101.stop"]  # type: ignore[arg-type]


def test_environment_names_the_cts_files(ct: Container) -> None:
    assert scripts.environment(ct) == {
        "VEID": "101", "VE_CONFFILE": str(ct.config.path),
        "VE_ROOT": str(ct.root), "VE_PRIVATE": str(ct.private)}


def test_a_missing_script_is_fine(ct: Container) -> None:
    scripts.run_on_host(ct, "premount")  # nothing there: nothing runs, nothing raised


def _status(mode: int, uid: int = 0) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 10, 0, 0, 0))


@pytest.mark.parametrize(("mode", "uid", "why"), [
    (stat.S_IFREG | 0o755, 0, None),
    (stat.S_IFREG | 0o644, 0, "is not executable"),
    (stat.S_IFREG | 0o775, 0, "is writable by group or others"),
    (stat.S_IFREG | 0o757, 0, "is writable by group or others"),
    (stat.S_IFREG | 0o755, 1000, "is owned by uid 1000, not root"),
    (stat.S_IFIFO | 0o755, 0, "is not a regular file"),
])
def test_refusals(ct: Container, mode: int, uid: int, why: str | None) -> None:
    found = scripts._refusal(ct, Path("/x"), _status(mode, uid), executable=True)
    if why is None:
        assert found is None
    else:
        assert found is not None and found.startswith(why), found


def test_refusal_is_exit_79(ct: Container) -> None:
    if os.geteuid() != 0:
        pytest.skip("the check wants root-owned files: needs root to make one")
    path = ct.paths.conf_dir / "101.premount"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o777)
    with pytest.raises(ActionScriptError) as caught:
        scripts.run_on_host(ct, "premount")
    assert caught.value.exit_code == 79
    assert "chmod go-w" in str(caught.value)


def test_a_script_leading_into_a_layouts_host_area_is_refused(tmp_path: Path) -> None:
    """BTRFS_POOL holds btrfs CTs' trees outside VE_PRIVATE's base: the disk plugin names
    it (``vz_host_areas``), so a script linked there is refused like one in a private area."""
    if os.geteuid() != 0:
        pytest.skip("the check wants root-owned files: needs root to make one")
    from vzcore.engine import Engine

    paths = Paths(tmp_path)
    paths.conf_dir.mkdir(parents=True)
    paths.vz_conf.write_text('BTRFS_POOL="/srv/pool"\n')
    ct = Engine(paths).container(101)
    pool = paths.host("/srv/pool")
    assert ct.host_areas() == [str(pool)]
    planted = pool / "102/bin/planted"
    planted.parent.mkdir(parents=True)
    planted.write_text("#!/bin/sh\n")
    planted.chmod(0o755)
    (paths.conf_dir / "101.premount").symlink_to(planted)
    with pytest.raises(ActionScriptError, match=f"it leads into {pool}"):
        scripts.run_on_host(ct, "premount")
