"""simfs: usage reported by vzctl quota and vzlist; limits refused with the host's reason."""

from __future__ import annotations

import json

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def test_simfs_usage_is_du_inside(vz_env: VzEnv, vzctl: Vzctl, busybox_ct: int) -> None:
    vzctl("start", busybox_ct)
    vzctl("exec", busybox_ct, "dd if=/dev/urandom of=/data bs=1M count=8 2>/dev/null; "
                              "mkdir /d; cd /d; seq 1 200 | xargs touch")
    du = int(vzctl("exec", busybox_ct, "du -skx /").stdout.split()[0])
    files = int(vzctl("exec", busybox_ct, "find / -xdev | wc -l").stdout)
    stat = vzctl("quota", busybox_ct).stdout.splitlines()
    used, inodes = int(stat[1].split()[1]), int(stat[2].split()[1])
    assert abs(used - du) <= 0.05 * du, f"vzctl quota says {used}K, du -s {du}K"
    assert abs(inodes - files) <= 0.05 * files, (inodes, files)
    listed = json.loads(vzctl("-a", "-j", "-o", "ctid,diskspace", binary="vzlist").stdout)
    assert listed[0]["diskspace"] == {"usage": used, "softlimit": None, "hardlimit": None}
    vzctl("stop", "--fast", busybox_ct)


def test_simfs_limits_are_refused_with_the_reason(vz_env: VzEnv, vzctl: Vzctl,
                                                  busybox_ct: int) -> None:
    conf = vz_env.conf(busybox_ct).read_text()
    for option in ("--diskspace", "--diskinodes"):
        out = vzctl("set", busybox_ct, option, "1000", "--save", check=False)
        assert out.returncode == 21, out.stderr
        assert "project quota" in out.stderr and "--layout image" in out.stderr, out.stderr
    assert vz_env.conf(busybox_ct).read_text() == conf
