"""OpenVZ's admin verbs (issue 17): ``vzctl set --applyconfig [--applyconfig_map name]``,
``--setmode restart|ignore``, ``--reset_ub``, ``set --force`` and ``vzctl runscript``,
on busybox CTs in both profiles (user namespace and privileged) where the CT's side
matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

SAMPLE = """\
NUMPROC="70:70"
CPUUNITS="500"
HOSTNAME="from-the-sample"
IP_ADDRESS="10.9.9.9"
OSTEMPLATE="other"
NAME="sample-name"
"""


def _sample(vz_env: VzEnv, name: str, text: str) -> Path:
    path = vz_env.root / "etc/vz/conf" / f"ve-{name}.conf-sample"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _init_pid(vz_env: VzEnv, ctid: int) -> int:
    return int(json.loads(vz_env.state(ctid).read_text())["init"]["pid"])


@pytest.mark.parametrize("profile", ["userns", "privileged"])
def test_admin_verbs_on_a_running_ct(vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path,
                                     profile: str) -> None:
    create = ["create", 101, "--ostemplate", "busybox", "--hostname", "ct101"]
    if profile == "privileged":
        vz_env.allow_privileged()
        create += ["--local_uid", "0", "--local_gid", "0"]
    vzctl(*create)
    vzctl("set", 101, "--numproc", "50:50", "--name", "web", "--save")
    vzctl("start", "web")
    cg = vz_env.cgroups(101)

    # runscript: a host file's commands run as the CT's root, in its PID namespace
    script = tmp_path / "setup.sh"
    script.write_text("hostname\nid -u\ncat /proc/1/comm\necho made > /root-mark\nexit 7\n")
    ran = vzctl("runscript", "web", script, check=False)
    assert ran.returncode == 7, ran.stderr
    assert ran.stdout.split() == ["ct101", "0", "init"]
    assert vzctl("exec", 101, "cat /root-mark").stdout.strip() == "made"
    assert not Path("/root-mark").exists()

    # --reset_ub: the config's beancounters again, after a change without --save
    vzctl("set", 101, "--numproc", "80:80")
    assert cg.read("pids", "pids.max") == "80"
    vzctl("set", "web", "--reset_ub")
    assert cg.read("pids", "pids.max") == "50"

    # --applyconfig on the running CT: applied live and saved, per-CT keys left alone
    _sample(vz_env, "small", SAMPLE)
    vzctl("set", 101, "--applyconfig", "small", "--save")
    assert cg.read("pids", "pids.max") == "70"
    conf = vz_env.conf(101).read_text()
    assert 'NUMPROC="70:70"' in conf and 'CPUUNITS="500"' in conf
    assert 'HOSTNAME="ct101"' in conf and "10.9.9.9" not in conf and 'NAME="web"' in conf

    # --setmode: a change that needs a restart warns, is silent, or restarts the CT
    warned = vzctl("set", 101, "--capability", "sys_time:on", "--save")
    assert "--setmode restart" in warned.stderr
    silent = vzctl("set", 101, "--capability", "sys_time:off", "--save", "--setmode", "ignore")
    assert "warning" not in silent.stderr
    before = _init_pid(vz_env, 101)
    vzctl("set", 101, "--capability", "sys_time:on", "--save", "--setmode", "restart")
    assert _init_pid(vz_env, 101) != before
    assert vzctl("status", 101).stdout.split()[4] == "running"
    caps = vzctl("exec", 101, "grep CapBnd /proc/1/status").stdout.split()[1]
    assert int(caps, 16) & (1 << 25)  # CAP_SYS_TIME in the restarted init's bounding set

    vzctl("stop", 101)  # runscript of a stopped CT: tests/system/test_runscript_stopped.py


@pytest.mark.parametrize(("args", "code", "words"), [
    (("--applyconfig", "nosuch", "--save"), 109, "sample config 'nosuch' not found"),
    (("--applyconfig", "../../vz", "--save"), 20, "a sample name is"),
    (("--applyconfig", "bad", "--save"), 21, 'NUMPROC="lots"'),
    (("--applyconfig_map", "name", "--save"), 20, "needs --applyconfig"),
    (("--applyconfig", "noname", "--applyconfig_map", "name", "--save"), 109, "has no NAME"),
    (("--reset_ub",), 31, "not running"),
    (("--reset_ub", "--numproc", "9:9"), 20, "takes no other option"),
    (("--setmode", "restart", "--cpuunits", "100"), 20, "add --save"),
    (("--setmode", "sometimes", "--cpuunits", "100"), 20, "sometimes"),
    (("--force", "--cpuunits", "100"), 20, "add --save"),
    (("--force", "--cpumask", "4095", "--save"), 21, "do not exist"),  # no check skipped
])
def test_bad_admin_options_are_refused_and_nothing_changes(
        vz_env: VzEnv, vzctl: Vzctl, args: tuple[str, ...], code: int, words: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    _sample(vz_env, "bad", 'NUMPROC="lots"\n')
    _sample(vz_env, "noname", 'CPUUNITS="10"\n')
    before = vz_env.conf(101).read_text()
    result = vzctl("set", 101, *args, check=False)
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert vz_env.conf(101).read_text() == before


def test_applyconfig_map_name_takes_only_the_samples_name(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    vzctl("create", 102, "--ostemplate", "busybox", "--name", "taken")
    _sample(vz_env, "small", SAMPLE)
    _sample(vz_env, "dup", 'NAME="taken"\n')
    vzctl("set", 101, "--applyconfig", "small", "--applyconfig_map", "name", "--save")
    conf = vz_env.conf(101).read_text()
    assert 'NAME="sample-name"' in conf and "NUMPROC" not in conf
    assert vzctl("status", "sample-name").stdout.split()[1] == "101"
    dup = vzctl("set", 101, "--applyconfig", "dup", "--applyconfig_map", "name", "--save",
                check=False)
    assert dup.returncode == 21 and "already CT 102's" in dup.stderr


REFUSING_PLUGIN = '''
"""A live parameter whose live change the kernel refuses (as one lacking a feature)."""
import errno

from vzcore import hookimpl
from vzcore.errors import KernelError
from vzcore.params import Parameter
from vzcore.plugin import PluginInfo
from vzcore.values import Text


@hookimpl
def vz_plugin_info():
    return PluginInfo(subsystem="testknob", summary="a knob the kernel refuses live")


@hookimpl
def vz_parameters():
    yield Parameter(name="testknob", key="TESTKNOB", type=Text(), live=True, help="test")


@hookimpl
def vz_apply(ct, changes, run):
    if "TESTKNOB" in changes and run is not None:
        raise KernelError("write", "testknob", errno.EOPNOTSUPP)
'''


def test_force_saves_what_the_running_ct_refuses(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vz_env.add_plugin_module("vz_test_knob", REFUSING_PLUGIN)
    vzctl("create", 101, "--ostemplate", "busybox")
    vzctl("start", 101)
    refused = vzctl("set", 101, "--testknob", "on", "--save", check=False)
    assert refused.returncode == 3 and "Operation not supported" in refused.stderr
    assert "TESTKNOB" not in vz_env.conf(101).read_text()
    forced = vzctl("set", 101, "--testknob", "on", "--save", "--force")
    assert "saving it anyway (--force)" in forced.stderr
    assert 'TESTKNOB="on"' in vz_env.conf(101).read_text()
    vzctl("stop", "--fast", 101)
