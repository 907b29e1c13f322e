"""Host names and /etc/hosts (issue 19, "also"): an invalid HOSTNAME that came with a
config file is refused at start (exit 21, nothing changed), like one given to
``vzctl set``; an /etc/hosts beyond 1 MiB keeps its tail when the start rewrites it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.security.conftest import PROFILES
from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

BAD_NAMES = ["bad name", "ct;reboot", "-lead.example", "x" * 65, "a" * 64 + ".b", "under_score",
             "x" * 60 + ".abcdef"]  # valid labels, longer than the kernel takes (64)


def _tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink()}


def _create(vz_env: VzEnv, vzctl: Vzctl, profile: str, *options: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", *profile_options(vz_env, profile), *options)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_set_refuses_a_bad_host_name(vz_env: VzEnv, vzctl: Vzctl, name: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "good")
    before = vz_env.conf(101).read_text()
    result = vzctl("set", 101, "--hostname", name, "--save", check=False)
    assert result.returncode == 21, result.stderr
    assert "hostname" in result.stderr.lower() and len(result.stderr.strip().splitlines()) == 1
    assert vz_env.conf(101).read_text() == before


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", ["bad name", "x" * 65, "ct;reboot"])
def test_start_refuses_a_bad_host_name_from_the_config(vz_env: VzEnv, vzctl: Vzctl, name: str,
                                                      profile: str) -> None:
    _create(vz_env, vzctl, profile, "--hostname", "good")
    conf = vz_env.conf(101)
    conf.write_text(re.sub(r'HOSTNAME="good"', f'HOSTNAME="{name}"', conf.read_text()))
    assert f'HOSTNAME="{name}"' in conf.read_text()
    private = _tree(vz_env.private(101))
    result = vzctl("start", 101, check=False)
    assert result.returncode == 21, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "CT 101" in message and "HOSTNAME" in message and "--hostname" in message, message
    assert vzctl("status", 101).stdout.split()[-2:] == ["unmounted", "down"]
    assert _tree(vz_env.private(101)) == private, "nothing in the CT changed"
    conf.write_text(conf.read_text().replace(f'HOSTNAME="{name}"', 'HOSTNAME="fixed"'))
    vzctl("start", 101)
    assert vzctl("exec2", 101, "hostname").stdout.strip() == "fixed"


@pytest.mark.parametrize("profile", PROFILES)
def test_a_large_etc_hosts_keeps_its_tail(vz_env: VzEnv, vzctl: Vzctl, profile: str) -> None:
    _create(vz_env, vzctl, profile, "--hostname", "big.example")
    hosts = vz_env.private(101) / "etc/hosts"
    body = "".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\thost{i}.example\n"
                   for i in range(60000))
    assert len(body) > 1 << 20
    hosts.write_text(f"127.0.0.1\tlocalhost\n{body}10.255.255.254\tthe-last-line\n")
    vzctl("start", 101)
    text = vzctl("exec2", 101, "cat /etc/hosts").stdout
    assert body in text, "every line of the old file is still there"
    assert "10.255.255.254\tthe-last-line\n" in text
    assert text.endswith("127.0.1.1\tbig.example big\n")
    vzctl("set", 101, "--hostname", "other.example")
    text = vzctl("exec2", 101, "cat /etc/hosts").stdout
    assert "10.255.255.254\tthe-last-line\n" in text and "big.example" not in text


def test_a_huge_etc_hosts_is_refused_whole(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """Past the sane bound (16 MiB) the start says so and leaves the file as it was."""
    _create(vz_env, vzctl, "userns", "--hostname", "huge.example")
    hosts = vz_env.private(101) / "etc/hosts"
    line = "10.1.2.3\t" + "h" * 55 + "\n"
    hosts.write_text(line * ((17 << 20) // len(line)))
    before = hashlib.sha256(hosts.read_bytes()).hexdigest()
    result = vzctl("start", 101, check=False)
    assert result.returncode != 0
    assert "CT 101: /etc/hosts in the CT is larger than 16 MiB" in result.stderr
    assert hashlib.sha256(hosts.read_bytes()).hexdigest() == before
    assert vzctl("status", 101).stdout.split()[-2:] == ["unmounted", "down"]
