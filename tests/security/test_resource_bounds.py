"""Resource bounds a CT cannot escape, and values that would break a CT (issue 19, items 3, 7).

* /dev/shm is a tmpfs of a documented size (:data:`vzcore.defaults.DEV_SHM_SIZE`), not half
  of the host's RAM, and a CT in the unprivileged profile cannot make it larger.
* The shipped vz.conf makes ``vzctl create`` apply a sample with a memory limit.
* Every declared parameter's minimum is enforced by ``set`` and, for a saved value, by
  ``start`` (exit 21, one line naming the minimum); a CT set to every minimum still runs.
* A fork refused at the CT's numproc limit is explained; no Python exception name or errno
  reaches the user.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import vzcore
from tests.security.conftest import PROFILES, RunningCt
from vzcore.defaults import DEV_SHM_SIZE
from vzcore.params import Parameter
from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv
from vzcore.values import Pair

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
PAGE = 4096
PYTHON_NOISE = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b|Errno|Traceback")
"""What must never reach a user: an exception class name, an errno repr, a traceback."""


def assert_plain(text: str) -> None:
    assert not PYTHON_NOISE.search(text), f"a Python exception reached the user: {text!r}"


def declared_parameters() -> list[Parameter]:
    """Every parameter the installed plugins declare with a minimum."""
    from vzcore.engine import Engine
    from vzcore.paths import Paths

    registry = Engine(Paths("/nonexistent-vz-root")).registry
    return [p for p in registry.unique_parameters() if p.minimum is not None and p.on_set]


def below(param: Parameter) -> str | None:
    """Option text just below ``param``'s minimum (``None`` when the minimum is 0)."""
    assert param.minimum is not None
    minimum = param.type.parse(param.minimum)
    if isinstance(minimum, Pair):
        if minimum.limit == 0:
            return None
        lower = Pair(max(minimum.barrier - 1, 0), minimum.limit - 1)
        return str(param.type.to_conf(lower))
    if isinstance(minimum, int) and minimum > 0:
        return str(param.type.to_conf(minimum - 1))
    return None


BOUNDED = [p for p in declared_parameters() if below(p) is not None]
SAVED = [p for p in BOUNDED if p.merge is None]
"""Parameters whose config key holds their own grammar (``--ram`` writes PHYSPAGES as
``--physpages`` does: its saved form is checked as physpages)."""


def install_shipped_config(vz_env: VzEnv) -> None:
    """vz.conf and the sample configs as contrib/setup.sh installs them in /etc/vz (here
    below the test's VZ_ROOT), keeping the test's own cgroup parent."""
    conf_dir = vz_env.root / "etc/vz/conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(vzcore.__file__).parent / "data/vz.conf", vz_env.root / "etc/vz/vz.conf")
    vz_env.write_vz_conf(CGROUP_PARENT=vz_env.cgroup_parent, STOP_TIMEOUT="20")
    for sample in REPO.glob("plugins/*/vzcore_*/samples/ve-*.conf-sample"):
        shutil.copy(sample, conf_dir / sample.name)


# -- item 3: /dev/shm and the default memory limit ---------------------------------------


def test_dev_shm_fills_only_to_its_documented_size(shared_ct: RunningCt) -> None:
    blocks, block_size = shared_ct.sh("stat -f -c '%b %S' /dev/shm").stdout.split()
    assert int(blocks) * int(block_size) == DEV_SHM_SIZE
    fill = shared_ct.sh("dd if=/dev/zero of=/dev/shm/fill bs=1M count=256 2>&1; echo status=$?").stdout
    assert "No space left on device" in fill and "status=0" not in fill
    written = int(shared_ct.sh("wc -c < /dev/shm/fill").stdout)
    assert DEV_SHM_SIZE - MIB <= written <= DEV_SHM_SIZE
    assert shared_ct.sh("rm /dev/shm/fill").returncode == 0


def test_dev_shm_cannot_be_made_larger(shared_ct: RunningCt) -> None:
    shared_ct.sh("mount -o remount,size=1G /dev/shm")
    blocks, block_size = shared_ct.sh("stat -f -c '%b %S' /dev/shm").stdout.split()
    assert int(blocks) * int(block_size) == DEV_SHM_SIZE


@pytest.mark.parametrize("profile", PROFILES)
def test_a_new_ct_has_a_memory_limit(vz_env: VzEnv, vzctl: Vzctl, vzlist: Vzctl,
                                     profile: str) -> None:
    install_shipped_config(vz_env)
    vzctl("create", 101, *profile_options(vz_env, profile))  # nothing else: vz.conf's defaults
    assert 'ORIGIN_SAMPLE="vswap-256m"' in vz_env.conf(101).read_text()
    vzctl("start", 101)
    limit = vzlist("-H", "-o", "physpages.l", 101).stdout.split()
    assert limit == [str(256 * MIB // PAGE)]
    cg = vz_env.cgroups(101)
    memory = "memory.limit_in_bytes" if cg.version == 1 else "memory.max"
    assert cg.read_int("memory", memory) == 256 * MIB
    vzctl("stop", "--fast", 101)


# -- item 7: minimums --------------------------------------------------------------------


@pytest.fixture
def stopped_ct(vzctl: Vzctl) -> int:
    vzctl("create", 101, "--ostemplate", "busybox")
    return 101


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 21, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert_plain(result.stderr)


def test_numproc_0_is_refused(vz_env: VzEnv, vzctl: Vzctl, stopped_ct: int) -> None:
    before = vz_env.conf(101).read_bytes()
    assert_refused(vzctl("set", 101, "--numproc", "0", "--save", check=False),
                   "CT 101", "--numproc", "minimum 8")
    assert vz_env.conf(101).read_bytes() == before


@pytest.mark.parametrize("param", BOUNDED, ids=lambda p: p.name)
def test_set_below_the_minimum_is_refused(vz_env: VzEnv, vzctl: Vzctl, stopped_ct: int,
                                          param: Parameter) -> None:
    before = vz_env.conf(101).read_bytes()
    value = below(param)
    result = vzctl("set", 101, f"--{param.name}", value, "--save", check=False)
    # The grammar of --cpuunits states its range itself ("7 is outside 8..500000").
    assert_refused(result, "CT 101", f"--{param.name}", str(param.minimum).split(":")[-1])
    assert vz_env.conf(101).read_bytes() == before


@pytest.mark.parametrize("param", SAVED, ids=lambda p: p.name)
def test_start_refuses_a_saved_value_below_the_minimum(vz_env: VzEnv, vzctl: Vzctl,
                                                       stopped_ct: int, param: Parameter) -> None:
    with vz_env.conf(101).open("a") as conf:
        conf.write(f'{param.key}="{below(param)}"\n')
    result = vzctl("start", 101, check=False)
    assert_refused(result, "CT 101", param.key, str(param.minimum).split(":")[-1],
                   f"vzctl set 101 --{param.name}")
    assert not vz_env.state(101).exists()
    assert "running" not in vzctl("status", 101).stdout.split()


def test_a_running_ct_keeps_its_limit_when_numproc_0_is_refused(vz_env: VzEnv, vzctl: Vzctl,
                                                                stopped_ct: int) -> None:
    vzctl("set", 101, "--numproc", "100", "--save")
    vzctl("start", 101)
    assert_refused(vzctl("set", 101, "--numproc", "0", check=False), "--numproc", "minimum 8")
    assert vz_env.cgroups(101).read_int("pids", "pids.max") == 100
    vzctl("stop", "--fast", 101)


def test_create_refuses_a_sample_below_the_minimum(vz_env: VzEnv, vzctl: Vzctl) -> None:
    conf_dir = vz_env.root / "etc/vz/conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "ve-tiny.conf-sample").write_text('NUMPROC="2:2"\n')
    result = vzctl("create", 101, "--ostemplate", "busybox", "--config", "tiny", check=False)
    assert_refused(result, "NUMPROC", "minimum of --numproc, 8")
    assert not vz_env.conf(101).exists() and not vz_env.private(101).exists()


@pytest.mark.parametrize("profile", PROFILES)
def test_a_ct_at_every_minimum_runs_init_and_a_command(vz_env: VzEnv, vzctl: Vzctl,
                                                       profile: str) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", *profile_options(vz_env, profile))
    values = {p.name: str(p.minimum) for p in declared_parameters() if p.merge is None}
    values["cpulimit"] = "1"  # its minimum 0 means no limit; 1 % of a CPU is the least limit
    vzctl("set", 101, *[arg for name, value in values.items() for arg in (f"--{name}", value)],
          "--save")
    vzctl("start", 101)
    assert vzctl("exec2", 101, "echo ok | cat").stdout == "ok\n"
    assert vzctl("exec3", 101, "/bin/echo", "again").stdout == "again\n"
    vzctl("stop", "--fast", 101)


# -- item 7: a CT at its process limit ---------------------------------------------------


def test_exec_at_the_numproc_limit_names_the_ct_and_numproc(vz_env: VzEnv, ct: RunningCt) -> None:
    started = ct.sh("i=0; while [ $i -lt 10 ]; do sleep 1000 </dev/null >/dev/null 2>&1 & "
                    "i=$((i+1)); done")
    assert started.returncode == 0, started.stderr
    # Below what runs now: the kernel keeps the processes and refuses every new one.
    ct.vzctl("set", ct.ctid, "--numproc", "8")
    assert (vz_env.cgroups(ct.ctid).read_int("pids", "pids.current") or 0) > 8
    for verb, args in (("exec", ["echo joined"]), ("exec2", ["echo joined"]),
                       ("exec3", ["/bin/echo", "joined"])):
        result = ct.vzctl(verb, ct.ctid, *args, check=False)
        assert result.returncode != 0 and "joined" not in result.stdout, verb
        assert f"CT {ct.ctid}" in result.stderr and "numproc 8" in result.stderr, result.stderr
        assert_plain(result.stderr)
    # stop still works: the halt inside cannot start, the CT's processes are killed.
    stopped = ct.vzctl("stop", ct.ctid, check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert_plain(stopped.stderr)
    assert not vz_env.state(ct.ctid).exists()
