"""CT names (issue 17): ``vzctl set --name``, a name accepted wherever a CTID is, and
vzlist's ``-n``, ``-N``, ``name``, ``smart_name`` and the ``veid``/``vpsid`` aliases."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]


def test_a_named_ct_is_reachable_by_name_in_every_verb_and_in_vzlist(
        vz_env: VzEnv, vzctl: Vzctl, vzlist: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "ct101")
    vzctl("create", 102, "--ostemplate", "busybox", "--name", "db")
    vzctl("set", 101, "--name", "web", "--save")
    assert 'NAME="web"' in vz_env.conf(101).read_text()

    vzctl("start", "web")
    assert vzctl("exec", "web", "hostname").stdout.strip() == "ct101"
    assert vzctl("status", "web").stdout.split()[:2] == ["CTID", "101"]
    assert "101:" in vzctl("ubc", "web").stdout  # plugin commands take a name too
    vzctl("set", "web", "--description", "front end", "--save")
    assert 'DESCRIPTION="front end"' in vz_env.conf(101).read_text()

    table = vzlist("-a", "-n").stdout.splitlines()
    assert table[0].split() == ["SMARTNAME", "NPROC", "STATUS", "IP_ADDR", "HOSTNAME"]
    assert [line.split()[0] for line in table[1:]] == ["web", "db"]
    assert vzlist("-a", "-H", "-N", "w*", "-o", "ctid").stdout.split() == ["101"]
    assert vzlist("-Ho", "veid").stdout.split() == ["101"]  # the scripting idiom
    assert vzlist("-a", "-H", "-o", "vpsid", "-s", "-veid").stdout.split() == ["102", "101"]
    assert vzlist("-H", "-o", "ctid", "web").stdout.split() == ["101"]
    rows = json.loads(vzlist("-a", "-j").stdout)
    assert [(r["ctid"], r["name"], r["smart_name"]) for r in rows] == [
        (101, "web", "web"), (102, "db", "db")]
    assert json.loads(vzlist("-j", "-o", "veid,name", "db").stdout) == [
        {"veid": 102, "name": "db"}]

    vzctl("stop", "--fast", "web")
    vzctl("set", 102, "--name", "", "--save")  # '' removes the name
    rows = json.loads(vzlist("-a", "-j", "-o", "ctid,name,smart_name").stdout)
    assert rows[1] == {"ctid": 102, "name": None, "smart_name": 102}
    vzctl("destroy", "web")
    assert not vz_env.conf(101).exists()


@pytest.mark.parametrize(("args", "code", "words"), [
    (("set", 102, "--name", "web", "--save"), 21, "already CT 101's"),
    (("set", 102, "--name", "1234", "--save"), 21, "starting with a letter"),
    (("set", 102, "--name", "1web", "--save"), 21, "starting with a letter"),
    (("set", 102, "--name", "-x", "--save"), 21, "starting with"),
    (("set", 102, "--name", "a/b", "--save"), 21, "letters, digits"),
    (("set", 102, "--name", "other"), 20, "add --save"),
    (("create", 103, "--ostemplate", "busybox", "--name", "web"), 21, "already CT 101's"),
    (("status", "nobody"), 14, "no CT is named 'nobody'"),
    (("start", "a b"), 20, "invalid CT ID or name"),
    (("create", "web", "--ostemplate", "busybox"), 20, "needs the new CT's ID"),
])
def test_a_bad_or_duplicate_name_is_refused_and_nothing_changes(
        vz_env: VzEnv, vzctl: Vzctl, args: tuple[object, ...], code: int, words: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--name", "web")
    vzctl("create", 102, "--ostemplate", "busybox")
    before = {c: vz_env.conf(c).read_text() for c in (101, 102)}
    result = vzctl(*args, check=False)
    assert result.returncode == code, result.stderr
    assert words in result.stderr and len(result.stderr.splitlines()) == 1
    assert {c: vz_env.conf(c).read_text() for c in (101, 102)} == before
    assert not vz_env.conf(103).exists() and not vz_env.private(103).exists()


def test_an_all_digit_argument_is_always_a_ctid(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """A config edited by hand to give a CT a numeric name does not shadow that CTID."""
    vzctl("create", 101, "--ostemplate", "busybox")
    with vz_env.conf(101).open("a") as conf:
        conf.write('NAME="102"\n')
    result = vzctl("status", 102, check=False)
    assert result.stdout.split()[:3] == ["CTID", "102", "deleted"]


def test_two_cts_cannot_take_one_name_at_once(vz_env: VzEnv, vzctl: Vzctl,
                                              tmp_path: Path) -> None:
    """The first set holds the names lock through its check and save (kept open by a
    pause at its set:locked point); the second, started inside that window, must wait
    and then find the name taken.  The CTs' own locks alone would let both through."""
    from vzcore.testing.pytest_plugin import vzctl_binary

    vzctl("create", 101, "--ostemplate", "busybox")
    vzctl("create", 102, "--ostemplate", "busybox")
    trace = tmp_path / "trace"
    env = {**vz_env.env, "VZ_FAULT_PAUSE_AT": "set:locked:2", "VZ_FAULT_TRACE": str(trace)}
    first = subprocess.Popen([vzctl_binary(), "set", "101", "--name", "web", "--save"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "set:locked" not in (trace.read_text() if trace.exists() else ""):
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        second = vzctl("set", 102, "--name", "web", "--save", check=False)
    finally:
        _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 21 and "already CT 101's" in second.stderr
    assert 'NAME="web"' in vz_env.conf(101).read_text()
    assert "NAME" not in vz_env.conf(102).read_text()
