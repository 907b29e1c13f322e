"""A CT ID is accepted only in its one spelling, by every verb and by vzlist.

Issue 19, item 6: ``vzctl create ' 101'`` created CT 101, ``'08808'`` created 8808,
full-width digits (U+FF10..U+FF19) ``'0881'`` created 881, and ``vzctl set '8801 '`` changed CT 8801.
Now anything but ASCII ``[1-9][0-9]*`` (or ``0``, the host) exits 20 with one line naming
the argument, and nothing is created or changed; config files whose names are not
canonical are not taken for CTs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.security.conftest import PROFILES
from tests.security.treesum import changes, settled_digest, tree_digest
from vzcore.errors import InvalidSyntax
from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

BAD_IDS = [" 101", "101 ", "0101", "00101", "+101", "\uff10\uff11\uff10\uff11", "\uff11\uff10\uff11",
           "\u0661\u0660\u0661", "101\n", "\t101", "1_01", "101.0", "2147483645"]
"""Each would name CT 101 (or an ID out of range) if stripped or normalised."""

EACH_KIND = [" 101", "0101", "+101", "\uff11\uff10\uff11", "\u0661\u0660\u0661", "101\n",
             "2147483645"]
"""One ID of each kind of wrong spelling in BAD_IDS."""

VERBS = {
    "create": ("--ostemplate", "busybox"),
    "destroy": (),
    "delete": (),
    "start": (),
    "stop": ("--fast",),
    "restart": ("--fast",),
    "status": (),
    "mount": (),
    "umount": (),
    "exec": ("true",),
    "exec2": ("true",),
    "exec3": ("/bin/true",),
    "enter": (),
    "set": ("--hostname", "renamed", "--save"),
    "ubc": (),
}


@pytest.fixture(params=PROFILES)
def running_101(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl) -> Iterator[VzEnv]:
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "ct101",
          *profile_options(vz_env, request.param))
    vzctl("start", 101)
    yield vz_env
    vzctl("stop", "--fast", 101, check=False)


def assert_refused_one_line(result_stderr: str, returncode: int, argument: str) -> None:
    assert returncode == InvalidSyntax.exit_code, result_stderr
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1 and repr(argument) in lines[0], result_stderr


def test_non_canonical_ids_are_refused_by_every_verb(running_101: VzEnv, vzctl: Vzctl) -> None:
    """Every verb refuses each kind of wrong spelling; one CT serves them all.

    The spelling check is one function for every verb, so the whole list is tried on one
    verb and one ID of each kind (padding, leading zero, sign, non-ASCII digits, out of
    range) on every other verb: a verb that bypassed the check would still fail here.
    """
    env = running_101
    before = settled_digest(env.root)
    for verb in sorted(VERBS):
        tried = BAD_IDS if verb == "status" else EACH_KIND
        for text in tried:
            result = vzctl(verb, text, *VERBS[verb], check=False)
            assert_refused_one_line(result.stderr, result.returncode, text)
            assert result.stdout == "", (verb, text)
    assert changes(before, tree_digest(env.root)) == []
    assert vzctl("status", 101).stdout.strip() == "CTID 101 exist mounted running"
    assert "ct101" in vzctl("exec2", 101, "hostname").stdout


def test_vzlist_refuses_non_canonical_ids(running_101: VzEnv, vzlist: Vzctl) -> None:
    for text in BAD_IDS:
        result = vzlist("-a", text, check=False)
        assert_refused_one_line(result.stderr, result.returncode, text)
        assert result.stdout == ""
    assert vzlist("-H", "-o", "ctid", "101").stdout.split() == ["101"]


def test_create_with_a_non_canonical_id_creates_nothing(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """The reproductions of the issue, on an empty installation."""
    before = tree_digest(vz_env.root)
    for text in (" 101", "08808", "\uff10\uff18\uff18\uff11", "8801 "):
        result = vzctl("create", text, "--ostemplate", "busybox", check=False)
        assert_refused_one_line(result.stderr, result.returncode, text)
    assert changes(before, tree_digest(vz_env.root)) == []


def test_config_files_with_non_canonical_names_are_no_cts(vz_env: VzEnv, vzctl: Vzctl,
                                                          vzlist: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    conf = vz_env.conf(101)
    for name in ("0102.conf", " 103.conf", "104 .conf", "\uff11\uff10\uff15.conf", "+106.conf",
                 "0.conf"):
        shutil.copy(conf, conf.with_name(name))
    assert vzlist("-a", "-1").stdout.split() == ["101"]
    assert vzlist("-a", "-H", "-o", "ctid,status").stdout.split() == ["101", "stopped"]
    for text in ("0102", "105", "102"):
        assert vzctl("status", text, check=False).stdout.split()[2:3] in (["deleted"], [])
