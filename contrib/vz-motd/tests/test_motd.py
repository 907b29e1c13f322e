"""The example plugin, installed with pip and found without any change to the core."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

HERE = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the plugin into a directory of its own (not the test venv)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(HERE)], check=True)
    return target


@pytest.fixture
def with_motd(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(installed))
    monkeypatch.setenv("VZ_CACHE_DIR", str(installed / ".cache"))


def test_discovered_and_working(with_motd: None, vz_env: VzEnv, vzctl: Vzctl) -> None:
    listing = vzctl("plugins").stdout
    assert any(line.split()[:4] == ["motd", "1.0.0", "motd", "active"] for line in listing.splitlines())
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "web", "--motd", "Hi {hostname}!")
    vzctl("start", 101)
    assert vzctl("exec", 101, "cat /etc/motd").stdout == "Hi web!\n"
    vzctl("set", 101, "--motd", "changed")
    assert vzctl("exec", 101, "cat /etc/motd").stdout == "changed\n"
    assert vzctl("motd", 101).stdout == "Hi web!\n"  # the saved one: set had no --save
    assert "motd" in vzctl("--help").stdout
    assert vzctl("set", 101, "--motd", "x" * 5000, check=False).returncode == 21


def test_motd_never_follows_a_link_out_of_the_ct(with_motd: None, vz_env: VzEnv, vzctl: Vzctl,
                                                tmp_path: Path) -> None:
    victim = tmp_path / "host-file"
    victim.write_text("host data\n")
    vzctl("create", 101, "--ostemplate", "busybox")
    os.symlink(str(victim), vz_env.private(101) / "etc/motd")
    vzctl("start", 101)
    assert victim.read_text() == "host data\n"
    assert "Welcome to CT 101" in vzctl("exec", 101, "cat /etc/motd").stdout
