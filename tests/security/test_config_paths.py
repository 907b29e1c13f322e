"""VE_PRIVATE and VE_ROOT from a damaged config never reach beyond the CT's own area.

Issue 19, item 2: with VE_PRIVATE of one CT pointing at another CT's private area both ran
on it and destroy deleted the other CT's files; VE_PRIVATE="/etc" made destroy wipe every
config; VE_ROOT="/" mounted the area over the whole prefix.  Every verb that uses the paths
now refuses them before any effect, naming the path, and destroy removes only a private
area that carries vzcore's mark for the CT.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import PROFILES, RunningCt
from tests.security.treesum import changes, settled_digest, tree_digest
from vzcore import areas
from vzcore.conffile import ConfigFile
from vzcore.errors import ConfigError, DestroyError, InvalidValue, PrivateAreaExists
from vzcore.linux import mounts
from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, vzctl_binary

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

VICTIM, HOSTILE = 8811, 8810

HOSTILE_PATHS = [
    ("VE_PRIVATE", "/vz/private/8811"),  # another CT's area
    ("VE_PRIVATE", "/vz/private/8811/root"),  # inside another CT's area
    ("VE_PRIVATE", "/vz/private"),  # the base: contains every CT's area
    ("VE_PRIVATE", "/etc"),  # the prefix's /etc: every config
    ("VE_PRIVATE", "/"),  # the whole prefix
    ("VE_PRIVATE", "/srv/ct8810"),  # outside vz.conf's base
    ("VE_PRIVATE", "/vz/private/../../etc"),
    ("VE_PRIVATE", "/etc/vz/conf/8810"),  # inside vzcore's own config directory
    ("VE_PRIVATE", "vz/private/8810"),  # relative: was a traceback
    ("VE_ROOT", "/"),
    ("VE_ROOT", "/etc"),
    ("VE_ROOT", "/vz/root/8811"),
    ("VE_ROOT", "/vz/private/8811"),
    ("VE_ROOT", "/vz/private/8810"),  # the CT's own private area
    ("VE_ROOT", "vz/root/8810"),
]
VERBS = ("start", "mount", "umount", "stop", "destroy")


def set_key(env: VzEnv, ctid: int, key: str, value: str) -> None:
    conf = ConfigFile.load(env.conf(ctid))
    conf.set(key, value)
    conf.save()


def snapshot(env: VzEnv) -> dict[str, tuple[object, ...]]:
    """The whole test directory: the prefix and what lies beside it."""
    return tree_digest(env.root.parent)


def assert_refused(result: subprocess.CompletedProcess[str], code: int, *names: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])


@pytest.fixture
def two_cts(vz_env: VzEnv, vzctl: Vzctl) -> VzEnv:
    """CTs 8811 (the victim, with a file of its own) and 8810 (whose config gets damaged)."""
    for ctid in (VICTIM, HOSTILE):
        vzctl("create", ctid, "--ostemplate", "busybox")
    (vz_env.private(VICTIM) / "root/precious").write_text("CT 8811's data\n")
    return vz_env


@pytest.fixture(scope="module")
def module_two_cts(vz_env_module: VzEnv, vzctl_module: Vzctl) -> tuple[VzEnv, dict[str, tuple[object, ...]]]:
    """``two_cts`` made once for the module's refusal tests, with its digest."""
    for ctid in (VICTIM, HOSTILE):
        vzctl_module("create", ctid, "--ostemplate", "busybox")
    (vz_env_module.private(VICTIM) / "root/precious").write_text("CT 8811's data\n")
    return vz_env_module, snapshot(vz_env_module)


@pytest.fixture
def shared_two_cts(module_two_cts: tuple[VzEnv, dict[str, tuple[object, ...]]],
                   vzctl_module: Vzctl) -> Iterator[VzEnv]:
    """``two_cts`` shared by the tests whose commands must be refused with no effect (the
    two creates cost more than most of them): 8810's config and the link a test makes are
    put back after each, and the installation must then be as made, or the test fails."""
    env, made = module_two_cts
    conf = env.conf(HOSTILE).read_bytes()
    yield env
    env.conf(HOSTILE).write_bytes(conf)
    (env.root / "vz/private/8812").unlink(missing_ok=True)
    assert changes(made, snapshot(env)) == [], "a test changed the shared CTs"


@pytest.mark.parametrize(("key", "value"), HOSTILE_PATHS)
@pytest.mark.parametrize("verb", VERBS)
def test_hostile_paths_are_refused_before_any_effect(shared_two_cts: VzEnv, vzctl_module: Vzctl,
                                                      key: str, value: str, verb: str) -> None:
    env, vzctl = shared_two_cts, vzctl_module
    set_key(env, HOSTILE, key, value)
    before = snapshot(env)
    result = vzctl(verb, HOSTILE, check=False)
    if key == "VE_ROOT" or verb not in ("stop", "umount"):  # those two use VE_ROOT only
        assert_refused(result, ConfigError.exit_code, f"CT {HOSTILE}", key, value)
    assert changes(before, snapshot(env)) == []
    assert not mounts.mounts_below(env.root)
    assert (env.private(VICTIM) / "root/precious").read_text() == "CT 8811's data\n"


def test_status_and_vzlist_answer_for_an_unusable_path(shared_two_cts: VzEnv,
                                                       vzctl_module: Vzctl) -> None:
    two_cts, vzctl = shared_two_cts, vzctl_module
    set_key(two_cts, HOSTILE, "VE_ROOT", "relative")
    set_key(two_cts, HOSTILE, "VE_PRIVATE", "relative")
    assert vzctl("status", HOSTILE).stdout.strip() == f"CTID {HOSTILE} exist unmounted down"
    listed = vzctl("-a", "-H", "-o", "ctid,private,root", HOSTILE, binary="vzlist")
    assert listed.stdout.split() == [str(HOSTILE), "-", "-"] and listed.stderr == ""


@pytest.mark.parametrize("target", ["etc", "ancestor"])
@pytest.mark.parametrize("verb", ("start", "mount", "destroy"))
def test_a_private_area_resolving_to_a_host_directory_is_refused(
        shared_two_cts: VzEnv, vzctl_module: Vzctl, target: str, verb: str) -> None:
    """The path in the config is fine, but a link on the host makes it the host's /etc or a
    directory that holds the whole installation."""
    env, vzctl = shared_two_cts, vzctl_module
    link = env.root / "vz/private/8812"
    link.symlink_to("/etc" if target == "etc" else env.root.parent)
    set_key(env, HOSTILE, "VE_PRIVATE", "/vz/private/8812")
    before = snapshot(env)
    etc_before = sorted(os.listdir("/etc"))
    result = vzctl(verb, HOSTILE, check=False)
    resolved = "/etc" if target == "etc" else str(env.root.parent)
    assert_refused(result, ConfigError.exit_code, "VE_PRIVATE", resolved)
    assert changes(before, snapshot(env)) == []
    assert sorted(os.listdir("/etc")) == etc_before


def test_create_refuses_hostile_paths(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", VICTIM, "--ostemplate", "busybox")
    for option, value in (("--private", "/etc"), ("--private", "/vz/private/8811"),
                          ("--private", "/vz/private/8811/sub"), ("--root", "/"),
                          ("--root", "/vz/root/8811"), ("--private", "/outside/8810")):
        before = snapshot(vz_env)
        result = vzctl("create", HOSTILE, "--ostemplate", "busybox", option, value, check=False)
        assert_refused(result, InvalidValue.exit_code, f"CT {HOSTILE}", value)
        assert changes(before, snapshot(vz_env)) == []


def test_concurrent_creates_on_one_path_make_one_ct(vz_env: VzEnv) -> None:
    """Two creates given the same --private at once: one CT, the other refused, and the
    refused one's rollback never removes the winner's area."""
    argv = [vzctl_binary(), "create", "CTID", "--ostemplate", "busybox",
            "--private", "/vz/private/shared"]
    runs = [subprocess.Popen([a.replace("CTID", str(c)) for a in argv], env=vz_env.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in (HOSTILE, VICTIM)]
    results = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]
    winners = [c for c, (code, _err) in zip((HOSTILE, VICTIM), results, strict=True) if code == 0]
    assert len(winners) == 1, results
    loser_code, loser_err = next(r for r in results if r[0] != 0)
    assert loser_code in (InvalidValue.exit_code, PrivateAreaExists.exit_code), loser_err
    shared = vz_env.root / "vz/private/shared"
    assert areas.read_marker(shared) == str(winners[0])
    assert (shared / "bin/busybox").exists()
    assert sorted(p.name for p in vz_env.root.joinpath("etc/vz/conf").iterdir()) == \
        [f"{winners[0]}.conf"]


def test_a_custom_path_below_the_base_is_accepted(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", HOSTILE, "--ostemplate", "busybox", "--private", "/vz/private/custom-8810")
    private = vz_env.root / "vz/private/custom-8810"
    assert areas.read_marker(private) == str(HOSTILE)
    vzctl("mount", HOSTILE)
    vzctl("umount", HOSTILE)
    vzctl("destroy", HOSTILE)
    assert not private.exists()


def test_a_pattern_in_vz_conf_sets_the_base(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """vz.conf's pattern and OpenVZ's default (where CTs made before the pattern changed
    are) are the bases; anything else is refused."""
    vzctl("create", VICTIM, "--ostemplate", "busybox")
    vz_env.write_vz_conf(VE_PRIVATE="/srv/vz/private/$VEID")
    vzctl("create", HOSTILE, "--ostemplate", "busybox")
    assert areas.read_marker(vz_env.root / "srv/vz/private/8810") == str(HOSTILE)
    refused = vzctl("create", 8812, "--ostemplate", "busybox", "--private", "/data/8812",
                    check=False)
    assert_refused(refused, InvalidValue.exit_code, "/srv/vz/private or /vz/private")
    vzctl("mount", VICTIM)
    vzctl("umount", VICTIM)
    vzctl("destroy", VICTIM)
    vzctl("destroy", HOSTILE)


@pytest.fixture(params=PROFILES)
def victim_running(request: pytest.FixtureRequest, two_cts: VzEnv, vzctl: Vzctl) -> Iterator[str]:
    """CT 8811 running in one profile (8810 stays stopped)."""
    if request.param == "privileged":
        vzctl("destroy", VICTIM)
        vzctl("create", VICTIM, "--ostemplate", "busybox", *profile_options(two_cts, "privileged"))
        (two_cts.private(VICTIM) / "root/precious").write_text("CT 8811's data\n")
    vzctl("start", VICTIM)
    yield request.param
    vzctl("stop", "--fast", VICTIM, check=False)


def test_a_ct_pointed_at_a_running_cts_area_is_refused_and_the_victim_unharmed(
        victim_running: str, two_cts: VzEnv, vzctl: Vzctl) -> None:
    """The reproduction of the issue: 8810's VE_PRIVATE (and VE_ROOT) name 8811's areas."""
    env = two_cts
    set_key(env, HOSTILE, "VE_PRIVATE", "/vz/private/8811")
    for verb in ("start", "mount", "destroy"):
        before = tree_digest(env.root / "etc")
        result = vzctl(verb, HOSTILE, check=False)
        assert_refused(result, ConfigError.exit_code, "/vz/private/8811", "CT 8811")
        assert changes(before, tree_digest(env.root / "etc")) == []
    set_key(env, HOSTILE, "VE_PRIVATE", "/vz/private/8810")
    set_key(env, HOSTILE, "VE_ROOT", "/vz/root/8811")
    assert_refused(vzctl("start", HOSTILE, check=False), ConfigError.exit_code, "/vz/root/8811")
    # 8811 runs on, and its verbs are not blocked by 8810's damaged config.
    assert vzctl("exec2", VICTIM, "cat /root/precious").stdout == "CT 8811's data\n"
    assert vzctl("status", VICTIM).stdout.split()[-1] == "running"
    set_key(env, HOSTILE, "VE_ROOT", "/vz/root/8810")
    set_key(env, HOSTILE, "VE_PRIVATE", "/vz/private/8811")
    vzctl("stop", "--fast", VICTIM)
    vzctl("start", VICTIM)
    vzctl("stop", "--fast", VICTIM)
    vzctl("destroy", VICTIM)
    assert not env.private(VICTIM).exists()


def test_set_on_a_running_ct_refuses_a_damaged_ve_root(victim_running: str, two_cts: VzEnv,
                                                       vzctl: Vzctl) -> None:
    """Live changes write below VE_ROOT (the host name files): a VE_ROOT changed to the
    whole prefix after the start must not make them land in the prefix's /etc."""
    set_key(two_cts, VICTIM, "VE_ROOT", "/")
    before = settled_digest(two_cts.root.parent)
    result = vzctl("set", VICTIM, "--hostname", "moved", check=False)
    assert_refused(result, ConfigError.exit_code, "VE_ROOT", "system directory")
    assert changes(before, snapshot(two_cts)) == []
    set_key(two_cts, VICTIM, "VE_ROOT", "/vz/root/8811")
    vzctl("set", VICTIM, "--hostname", "moved")
    assert vzctl("exec2", VICTIM, "hostname").stdout.strip() == "moved"


def test_destroy_refuses_an_unmarked_area_off_the_pattern(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """A CT of an older release (no mark) at a path of its own: destroy needs --force."""
    vzctl("create", HOSTILE, "--ostemplate", "busybox", "--private", "/vz/private/old-8810")
    private = vz_env.root / "vz/private/old-8810"
    os.removexattr(private, areas.MARKER)
    before = snapshot(vz_env)
    result = vzctl("destroy", HOSTILE, check=False)
    assert_refused(result, DestroyError.exit_code, str(private), "--force")
    assert changes(before, snapshot(vz_env)) == []
    vzctl("destroy", "--force", HOSTILE)
    assert not private.exists() and not vz_env.conf(HOSTILE).exists()


def test_destroy_accepts_an_unmarked_area_at_the_pattern_path(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """Migration: a CT of an older release where vz.conf's pattern puts it is removed."""
    vzctl("create", HOSTILE, "--ostemplate", "busybox")
    os.removexattr(vz_env.private(HOSTILE), areas.MARKER)
    vzctl("destroy", HOSTILE)
    assert not vz_env.private(HOSTILE).exists()


def test_destroy_refuses_an_area_marked_for_another_ct(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", HOSTILE, "--ostemplate", "busybox")
    os.setxattr(vz_env.private(HOSTILE), areas.MARKER, b"8811")
    before = snapshot(vz_env)
    for verb in ("destroy", "start", "mount"):
        result = vzctl(verb, "--force", HOSTILE, check=False) if verb == "destroy" else \
            vzctl(verb, HOSTILE, check=False)
        assert_refused(result, ConfigError.exit_code, str(vz_env.private(HOSTILE)), "8811")
    assert changes(before, snapshot(vz_env)) == []
    os.setxattr(vz_env.private(HOSTILE), areas.MARKER, b"8810")
    vzctl("destroy", HOSTILE)


XATTR_TOOL = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
/* xattr get|set|remove PATH NAME [VALUE]: prints the value, ok, or the errno name. */
int main(int argc, char **argv) {
    char buf[64];
    ssize_t r = -1;
    if (argc == 4 && !strcmp(argv[1], "get")) {
        r = lgetxattr(argv[2], argv[3], buf, sizeof buf - 1);
        if (r >= 0) { buf[r] = 0; printf("%s\n", buf); return 0; }
    } else if (argc == 5 && !strcmp(argv[1], "set")) {
        r = lsetxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0);
    } else if (argc == 4 && !strcmp(argv[1], "remove")) {
        r = lremovexattr(argv[2], argv[3]);
    } else {
        errno = EINVAL;
    }
    if (r < 0) { printf("%s\n", strerrorname_np(errno)); return 1; }
    printf("ok\n");
    return 0;
}
"""


@pytest.fixture(scope="session")
def xattr_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("xattr")
    (directory / "xattr.c").write_text(XATTR_TOOL)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(directory / "xattr"),
                    str(directory / "xattr.c")], check=True)
    return directory / "xattr"


def test_a_ct_root_cannot_see_remove_or_forge_the_mark(ct: RunningCt, vz_env: VzEnv, vzctl: Vzctl,
                                                        xattr_tool: Path) -> None:
    """The mark is out of an unprivileged CT's reach; what a privileged CT's root can do
    with it (it has CAP_SYS_ADMIN of the host) enables nothing harmful: a mark naming
    itself on a subdirectory does not make that directory another CT's area, and a mark
    naming another CT only blocks its own destroy."""
    target = vz_env.private(101) / "usr/local/bin/xattr"
    target.write_bytes(xattr_tool.read_bytes())
    target.chmod(0o755)
    owner = vz_env.private(101).stat()
    os.chown(target, owner.st_uid, owner.st_gid)

    def tool(*args: str) -> str:
        return vzctl("exec3", 101, "/usr/local/bin/xattr", *args, check=False).stdout.strip()

    if ct.profile == "userns":
        assert tool("get", "/", areas.MARKER) in ("ENODATA", "EPERM")
        assert tool("remove", "/", areas.MARKER) in ("EPERM", "ENODATA")
        assert tool("set", "/", areas.MARKER, "8811") == "EPERM"
        assert tool("set", "/home", areas.MARKER, "101") == "EPERM"
        assert areas.read_marker(vz_env.private(101)) == "101"
        return
    assert tool("set", "/home", areas.MARKER, "8810") == "ok"
    assert tool("set", "/", areas.MARKER, "8811") == "ok"
    vzctl("create", HOSTILE, "--ostemplate", "busybox")
    set_key(vz_env, HOSTILE, "VE_PRIVATE", "/vz/private/101/home")
    for verb in ("mount", "destroy"):
        result = vzctl(verb, HOSTILE, check=False)
        assert_refused(result, ConfigError.exit_code, "overlaps VE_PRIVATE of CT 101")
    assert (vz_env.private(101) / "home").is_dir()
    vzctl("stop", "--fast", 101)
    refused = vzctl("destroy", 101, check=False)
    assert refused.returncode != 0 and "8811" in refused.stderr
    assert (vz_env.private(101) / "etc/passwd").exists()
    set_key(vz_env, HOSTILE, "VE_PRIVATE", "/vz/private/8810")
